"""Downloads a large public file from Google Drive: `python utils/download_from_gdrive.py FILE_ID DESTINATION`.

For a file too large for its virus scan, Drive first answers with an HTML page instead of the file, and the
download must be confirmed. Two forms of that are handled:

* the current one: a page with a form (action `https://drive.usercontent.google.com/download`) whose hidden
  fields `id`, `export`, `confirm` and `uuid` are sent back to the form's address;
* the old one: a `download_warning_...` cookie whose value is sent back as `confirm=<value>`.

Any other HTML page (download quota exceeded, file not shared, no such file) is an error whose message
quotes the page; nothing is written to DESTINATION then. The file itself is streamed with a progress bar into
a temporary file beside DESTINATION and renamed into place when complete (`utils.data.downloads.write_response`):
Drive gives no checksum, so a `.zip` or tar archive must first read to its end, and one cut short leaves
DESTINATION as it was.
FILE_ID is the part of a sharing link `https://drive.google.com/file/d/FILE_ID/view`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

import argparse  # noqa: E402
import html.parser  # noqa: E402
import logging  # noqa: E402
import urllib.parse  # noqa: E402

import requests  # noqa: E402

from utils.data.downloads import write_response  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger('download_from_gdrive')

DRIVE_URL = 'https://drive.google.com/uc'
# The first answer, then at most two confirmations (a cookie, then a form, or the other way round).
MAX_REQUESTS = 3


def download_from_gdrive(file_id, destination, base_url=None, session=None, timeout=60):
    """Downloads a public Google Drive file, confirming the virus-scan warning if Drive asks.

    Args:
        file_id: the file's Drive id.
        destination: file path; its folder must exist.
        base_url: the download address to start from; by default `DRIVE_URL`.
        session: a `requests.Session` (it keeps Drive's cookies between requests), or None for a new one.
        timeout: seconds to wait for the server to connect or to send more data.

    Returns:
        `destination`.

    Raises:
        ConnectionError: the server could not be reached, answered with an HTTP error, or the connection
            broke before the whole file arrived.
        ValueError: Drive answered with an HTML page that is not a download confirmation (quota exceeded,
            not shared, ...), or an archive arrived incomplete (`utils.data.downloads.check_archive`).
        FileNotFoundError: the destination folder does not exist.
        In every case nothing is left at `destination`.
    """
    session = session or requests.Session()
    url, params = base_url or DRIVE_URL, {'export': 'download', 'id': file_id}
    for _ in range(MAX_REQUESTS):
        try:
            with session.get(url, params=params, stream=True, timeout=timeout) as response:
                if response.status_code != 200:
                    raise ConnectionError(f'Google Drive answered HTTP {response.status_code} {response.reason} '
                                          f'for file {file_id}; {_advice(file_id)}')
                if not _is_html(response):
                    write_response(response, destination)
                    return destination
                page, page_url = response.text, response.url
                token = next((value for name, value in response.cookies.items()
                              if name.startswith('download_warning')), None)
        except requests.RequestException as error:
            raise ConnectionError(f'downloading {file_id} from Google Drive failed ({error.__class__.__name__}: '
                                  f'{error}); check your connection and run the command again.') from error
        page_parser = _DrivePage()
        page_parser.feed(page)
        if token is not None and params.get('confirm') != token:
            logger.info('confirming the download with the download_warning cookie')
            params = dict(params, confirm=token)
        elif page_parser.confirm_form is not None:
            logger.info('confirming the download with the form of the virus-scan warning page')
            action, fields = page_parser.confirm_form
            url, params = urllib.parse.urljoin(page_url, action), fields
        else:
            raise ValueError(f'Google Drive sent a web page instead of file {file_id}: '
                             f'"{page_parser.summary()}". {_advice(file_id)}')
    raise ValueError(f'Google Drive kept asking to confirm the download of {file_id}; {_advice(file_id)}')


def _advice(file_id):
    return ('check that the file is shared publicly; if its download quota is exceeded, try again later or '
            f'download it in a browser from https://drive.google.com/file/d/{file_id}/view')


def _is_html(response):
    return response.headers.get('Content-Type', '').split(';')[0].strip().lower() == 'text/html'


class _DrivePage(html.parser.HTMLParser):
    """Reads a Drive HTML page: the download confirmation form, if any, and the page's text for errors.

    Attributes:
        confirm_form: `(action, {field name: value})` of the first form with a `confirm` field, or None.
    """

    def __init__(self):
        super().__init__()
        self.confirm_form = None
        self._form = None  # (action, fields) of the form being read
        self._skipping = 0  # depth inside <script> / <style>
        self._title, self._text, self._in_title = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or '' for name, value in attrs}
        if tag == 'form':
            self._form = (attrs.get('action', ''), {})
        elif tag == 'input' and self._form is not None and attrs.get('name'):
            self._form[1][attrs['name']] = attrs.get('value', '')
        elif tag in ('script', 'style'):
            self._skipping += 1
        elif tag == 'title':
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == 'form' and self._form is not None:
            if self.confirm_form is None and 'confirm' in self._form[1]:
                self.confirm_form = self._form
            self._form = None
        elif tag in ('script', 'style'):
            self._skipping = max(0, self._skipping - 1)
        elif tag == 'title':
            self._in_title = False

    def handle_data(self, data):
        if self._skipping:
            return
        (self._title if self._in_title else self._text).append(data)

    def summary(self, length=300):
        """The page's title and the start of its text, white space folded."""
        title = ' '.join(''.join(self._title).split())
        text = ' '.join(' '.join(self._text).split())
        joined = ' - '.join(part for part in (title, text) if part) or 'an empty page'
        return joined if len(joined) <= length else joined[:length - 3] + '...'


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('file_id', help='the Drive id of the file (from https://drive.google.com/file/d/ID/view)')
    parser.add_argument('destination', help='where to write the file; its folder must exist')
    cli.add_logging_arguments(parser, 'INFO')
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    download_from_gdrive(args.file_id, args.destination)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
