"""utils/download_from_gdrive.py against a loopback server that answers like Google Drive: the file at once,
the old cookie confirmation, the current form confirmation, and error pages."""

import os
import urllib.parse

import pytest

from conftest import make_zip, run_script, send_bytes, send_without_length
from utils import download_from_gdrive as gdrive
from utils.running.cli import run_main

FILE_ID = '0B5MzpY9kBtDVZ2RpVDYwWmxoSUk'
CONTENT = make_zip({'20180402-114759/model.pb': bytes(range(256)) * 4000})  # a model.zip of about 1 MB


def query(path):
    """The query parameters of a request path, as a dict."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


def send_html(handler, text, headers=()):
    send_bytes(handler, text.encode(), 'text/html; charset=utf-8', headers=headers)


def confirm_form_page(action):
    """The virus-scan warning page as Drive sends it today: a form of hidden fields, among scripts."""
    return f'''<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>
        <script>var x = "<form>not a form</form>";</script></head><body>
        <p class="uc-warning-subcaption">Google Drive can't scan this file for viruses.</p>
        <form id="download-form" action="{action}" method="get">
          <input type="submit" id="uc-download-link" value="Download anyway"/>
          <input type="hidden" name="id" value="{FILE_ID}"><input type="hidden" name="export" value="download">
          <input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="1234-abcd">
        </form></body></html>'''


QUOTA_PAGE = '''<html><head><title>Google Drive - Quota exceeded</title><style>p {color: red}</style></head>
    <body><p>Sorry, you can't view or download this file at this time.</p>
    <p>Too many users have viewed or downloaded this file recently.</p></body></html>'''


@pytest.fixture
def drive(http_server):
    """The loopback server, with `.uc_url` the address to start from."""
    http_server.uc_url = http_server.url + '/uc'
    return http_server


def test_small_file_comes_at_once(drive, tmp_path):
    drive.routes['/uc'] = lambda handler: send_bytes(handler, CONTENT)
    destination = str(tmp_path / 'model.zip')
    assert gdrive.download_from_gdrive(FILE_ID, destination, base_url=drive.uc_url) == destination
    assert open(destination, 'rb').read() == CONTENT
    assert query(drive.requests[0][0]) == {'export': 'download', 'id': FILE_ID}


def test_old_flow_confirms_with_the_download_warning_cookie(drive, tmp_path):
    def uc(handler):
        if query(handler.path).get('confirm') == 'TOKEN42':
            send_bytes(handler, CONTENT, 'application/zip')
        else:
            send_html(handler, '<html><body>Google Drive can\'t scan this file for viruses.</body></html>',
                      headers=[('Set-Cookie', f'download_warning_13058876669334088843_{FILE_ID}=TOKEN42; Path=/')])

    drive.routes['/uc'] = uc
    destination = tmp_path / 'model.zip'
    gdrive.download_from_gdrive(FILE_ID, str(destination), base_url=drive.uc_url)
    assert destination.read_bytes() == CONTENT
    assert len(drive.requests) == 2
    assert query(drive.requests[1][0]) == {'export': 'download', 'id': FILE_ID, 'confirm': 'TOKEN42'}
    assert 'download_warning' in drive.requests[1][1].get('Cookie', '')  # the session kept the cookie


def test_current_flow_submits_the_confirmation_form(drive, tmp_path):
    drive.routes['/uc'] = lambda handler: send_html(handler, confirm_form_page(drive.url + '/download'))

    def download(handler):
        if query(handler.path) == {'id': FILE_ID, 'export': 'download', 'confirm': 't', 'uuid': '1234-abcd'}:
            send_bytes(handler, CONTENT)
        else:
            send_html(handler, '<html><title>Error 400</title></html>')

    drive.routes['/download'] = download
    destination = tmp_path / 'model.zip'
    gdrive.download_from_gdrive(FILE_ID, str(destination), base_url=drive.uc_url)
    assert destination.read_bytes() == CONTENT
    assert [request[0].split('?')[0] for request in drive.requests] == ['/uc', '/download']
    assert sorted(os.listdir(tmp_path)) == ['model.zip']  # no temporary file left


def test_relative_form_action_is_resolved_against_the_page(drive, tmp_path):
    drive.routes['/uc'] = lambda handler: send_html(handler, confirm_form_page('/download'))
    drive.routes['/download'] = lambda handler: send_bytes(handler, CONTENT)
    gdrive.download_from_gdrive(FILE_ID, str(tmp_path / 'model.zip'), base_url=drive.uc_url)
    assert (tmp_path / 'model.zip').read_bytes() == CONTENT


@pytest.mark.parametrize('route, page, words', [
    ('/uc', QUOTA_PAGE, 'Quota exceeded - Sorry, you can\'t view or download'),
    ('/download', QUOTA_PAGE, 'Too many users'),
    ('/download', '<html><body></body></html>', 'an empty page'),
], ids=['quota-at-once', 'quota-after-confirming', 'empty-page'])
def test_error_page_fails_clearly_and_leaves_nothing(drive, tmp_path, route, page, words):
    drive.routes['/uc'] = lambda handler: send_html(handler, confirm_form_page(drive.url + '/download'))
    drive.routes[route] = lambda handler: send_html(handler, page)
    destination = tmp_path / 'model.zip'
    with pytest.raises(ValueError, match='web page instead of file') as raised:
        gdrive.download_from_gdrive(FILE_ID, str(destination), base_url=drive.uc_url)
    assert words in str(raised.value)
    assert 'try again later' in str(raised.value) and 'color' not in str(raised.value)  # no style text
    assert os.listdir(tmp_path) == []


def test_cookie_that_does_not_unlock_the_file_is_not_retried_forever(drive, tmp_path):
    drive.routes['/uc'] = lambda handler: send_html(
        handler, QUOTA_PAGE, headers=[('Set-Cookie', 'download_warning_1=TOKEN; Path=/')])
    with pytest.raises(ValueError, match='Quota exceeded'):
        gdrive.download_from_gdrive(FILE_ID, str(tmp_path / 'model.zip'), base_url=drive.uc_url)
    assert len(drive.requests) == 2
    assert os.listdir(tmp_path) == []


def test_zip_cut_short_without_length_keeps_the_old_file(drive, tmp_path):
    destination = tmp_path / 'model.zip'
    destination.write_bytes(b'the good copy')
    drive.routes['/uc'] = lambda handler: send_without_length(handler, CONTENT[:len(CONTENT) // 2])
    with pytest.raises(ValueError, match='downloaded model.zip is not a complete zip archive'):
        gdrive.download_from_gdrive(FILE_ID, str(destination), base_url=drive.uc_url)
    assert destination.read_bytes() == b'the good copy' and os.listdir(tmp_path) == ['model.zip']
    drive.routes['/uc'] = lambda handler: send_without_length(handler, CONTENT)
    gdrive.download_from_gdrive(FILE_ID, str(destination), base_url=drive.uc_url)
    assert destination.read_bytes() == CONTENT


def test_http_error_and_unreachable_server(drive, tmp_path):
    with pytest.raises(ConnectionError, match='HTTP 404'):
        gdrive.download_from_gdrive(FILE_ID, str(tmp_path / 'model.zip'), base_url=drive.url + '/missing')
    with pytest.raises(ConnectionError, match='check your connection'):
        gdrive.download_from_gdrive(FILE_ID, str(tmp_path / 'model.zip'), base_url='http://127.0.0.1:9/uc',
                                    timeout=5)
    assert os.listdir(tmp_path) == []


def test_command_line(drive, tmp_path, monkeypatch, capsys):
    drive.routes['/uc'] = lambda handler: send_html(handler, QUOTA_PAGE)
    monkeypatch.setattr(gdrive, 'DRIVE_URL', drive.uc_url)
    assert run_main(gdrive.main, [FILE_ID, str(tmp_path / 'model.zip')]) == 2
    assert capsys.readouterr().err.startswith('error: Google Drive sent a web page')
    drive.routes['/uc'] = lambda handler: send_bytes(handler, CONTENT)
    assert run_main(gdrive.main, [FILE_ID, str(tmp_path / 'model.zip')]) == 0
    assert (tmp_path / 'model.zip').read_bytes() == CONTENT


def test_runs_as_a_script_from_the_repository_root():
    result = run_script('utils/download_from_gdrive.py', '--help', timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'FILE_ID' in result.stdout.upper() and 'destination' in result.stdout
