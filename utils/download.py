"""Downloads a file atomically, checked, with a progress bar, and unpacks it safely when asked
(`utils.data.downloads`): `python utils/download.py URL DESTINATION [--md5 HEX] [--extract]`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

import argparse  # noqa: E402
import logging  # noqa: E402

from utils.data.downloads import download, extract_tar  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger(__name__)


def parse_args(argv):
    parser = argparse.ArgumentParser(description='Downloads a file atomically, checked, with a progress bar; '
                                                 'optionally unpacks it when it is a tar archive.')
    parser.add_argument('url', help='the http(s) address of the file')
    parser.add_argument('destination', help='where to write the file; its folder must exist')
    parser.add_argument('--md5', metavar='HEX', help='expected MD5 of the file; a mismatch leaves nothing behind')
    parser.add_argument('--extract', action='store_true',
                        help='then unpack the file, a tar archive (any compression), into its folder, safely')
    cli.add_logging_arguments(parser, 'INFO')
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    download(args.url, args.destination, args.md5)
    if args.extract:
        names = extract_tar(args.destination, os.path.dirname(os.path.abspath(args.destination)))
        logger.info('extracted %s', ', '.join(names))
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
