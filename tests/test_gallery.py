"""Tests of `utils/pictures/gallery.py` and the heatmaps: `activations.json` against the tracker's arrays, the montage
layout the page cuts its patches from, heatmaps, and the page itself in headless Chromium (Debian's `chromium`
and `chromium-driver`; skipped where they are missing, failed under CI). The run is the box-filter example of
`shard_fixtures`, in numpy: no TensorFlow session."""

import contextlib
import io
import json
import os
import re
import shutil
import tempfile

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import vgg16_activations
from conftest import EXPLANATION_FILES, assert_explained_run, grid_field
from shard_fixtures import (BOX_FILTER_EXAMPLE, BOX_LAYERS, box_filter_args, merge, open_box_filter_dataset,
                            open_box_filter_model, outputs)
from utils.base.channel_statistics import RELATIVE_ERROR
from activations import TopActivations
from utils.core import pipeline
from utils.core.attributing import AttributionOptions
from utils.core.states import ShardState, merge_states, state_path
from utils.pictures.drawing import heatmap_centres, overlay_heatmap
from utils.pictures.gallery import montage_layout
from utils.pictures.montage import BORDER, column_caption, crop_column, full_column, layer_pictures, tile_columns
from utils.running import shards

NUM_SAMPLES = 3
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1200,900']


def run_box_filter(out_dir, heatmap=False, attribution=None, **flags):
    """What an example script does, on the box-filter network: fields, scan, pictures and gallery, and the
    attributions and effective receptive fields that `attribution` (`AttributionOptions`) asks for; `flags`: more
    `box_filter_args`.

    Returns:
        `(model, dataset, fields, trackers)`.
    """
    out_dir.mkdir()
    args = box_filter_args(out_dir, num_samples=NUM_SAMPLES, **flags)
    model = open_box_filter_model(args)
    dataset = open_box_filter_dataset(args)
    fields = pipeline.measure_receptive_fields(model, print_lines=False)
    trackers = pipeline.scan(model, dataset, NUM_SAMPLES, print_line=False, bottom_k=args.bottom_k)
    pipeline.draw(model, fields, trackers, str(out_dir), 0, dataset=dataset, heatmap=heatmap, attribution=attribution)
    return model, dataset, fields, trackers


@pytest.fixture(scope='module')
def gallery_run(tmp_path_factory):
    """`(out_dir, model, dataset, fields, trackers)` of a box-filter run without heatmaps."""
    out_dir = tmp_path_factory.mktemp('gallery') / 'plain'
    return (out_dir, *run_box_filter(out_dir))


ERF_IMAGES = 4


@pytest.fixture(scope='module')
def explained_gallery_run(tmp_path_factory):
    """`(out_dir, printed)` of a box-filter run with attributions by occlusion (the model has no gradients) and
    effective receptive fields over `ERF_IMAGES` images; `printed`: what it wrote to stdout."""
    out_dir = tmp_path_factory.mktemp('gallery') / 'explained'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_box_filter(out_dir, attribution=AttributionOptions('occlusion', erf=True, erf_images=ERF_IMAGES))
    return out_dir, printed.getvalue()


# Seven bright images and three dark ones: the box filter fires on the bright ones only, its negative on the dark.
CLASSES = ['bright', 'dark', 'bright', 'bright', 'dark', 'bright', 'bright', 'dark', 'bright', 'bright']


@pytest.fixture(scope='module')
def classes_gallery_run(tmp_path_factory):
    """`(out_dir, model, dataset, fields, trackers)` of a box-filter run on images of the classes `CLASSES`."""
    out_dir = tmp_path_factory.mktemp('gallery') / 'classes'
    return (out_dir, *run_box_filter(out_dir, classes=CLASSES))


@pytest.fixture(scope='module')
def dead_gallery_run(tmp_path_factory):
    """`(out_dir, printed)` of a box-filter run on bright images only: the negative filter (channel 1) never fires."""
    out_dir = tmp_path_factory.mktemp('gallery') / 'dead'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_box_filter(out_dir, classes=['bright'] * 10)
    return out_dir, printed.getvalue()


BOTTOM_K = 2


@pytest.fixture(scope='module')
def bottom_gallery_run(tmp_path_factory):
    """`(out_dir, model, dataset, fields, trackers)` of a box-filter run with `--bottom_k BOTTOM_K`."""
    out_dir = tmp_path_factory.mktemp('gallery') / 'bottom'
    return (out_dir, *run_box_filter(out_dir, bottom_k=BOTTOM_K))


def read_json(out_dir):
    with open(out_dir / 'activations.json') as stream:
        return json.load(stream)


# -- activations.json --------------------------------------------------------------------------------------------

def test_json_holds_every_tracked_channel_as_the_tracker_has_it(gallery_run):
    out_dir, model, dataset, fields, trackers = gallery_run
    document = read_json(out_dir)
    assert document['version'] == 1
    assert [layer['name'] for layer in document['layers']] == model.layer_names
    for index, (layer, tracker) in enumerate(zip(document['layers'], trackers)):
        field = fields[index]
        assert layer['feature_map'] == [*field.feature_shape, tracker.num_channels]
        assert layer['receptive_field'] == {'size': list(field.size), 'stride': list(field.stride),
                                            'padding': list(field.padding)}
        assert layer['images_seen'] == len(dataset) and layer['image_size'] == [field.height, field.width]
        assert layer['drawn_channels'] == list(range(tracker.num_channels))  # --num_channels all; all fire
        assert len(layer['channels']) == tracker.num_channels
        for channel, ranked in enumerate(layer['channels']):
            assert [record['firing'] for record in ranked] == tracker.firings[channel].tolist()  # exact floats
            assert [record['index'] for record in ranked] == tracker.indices[channel].tolist()
            assert [record['image'] for record in ranked] == [dataset.ids[i] for i in tracker.indices[channel]]
            assert [record['feature_yx'] for record in ranked] == tracker.coords[channel].tolist()
            assert [record['box'] for record in ranked] == [field.recfield[y, x].tolist()
                                                            for y, x in tracker.coords[channel]]
        stem = layer['name'].replace('/', '-').replace(':', '')
        assert layer['pictures'] == {'full': f'{stem}-full.jpg', 'crop': f'{stem}-crop.jpg'}


def test_a_merge_of_shards_writes_the_gallery_of_a_single_run(gallery_run, tmp_path):
    out_dir = gallery_run[0]
    for index in range(2):
        args = box_filter_args(tmp_path / 'states', num_samples=NUM_SAMPLES, num_shards=2, shard_index=index)
        assert shards.run(BOX_FILTER_EXAMPLE, args) == 0
    paths = [state_path(str(tmp_path / 'states'), name, index, 2) for name in gallery_run[1].layer_names
             for index in range(2)]
    assert merge(paths, tmp_path / 'merged') == 0
    for name in ('activations.json', 'index.html'):
        assert (tmp_path / 'merged' / name).read_bytes() == (out_dir / name).read_bytes(), name


def every_maximum(model, dataset):
    """`[images, channels]` maxima of every layer, computed again from the whole dataset."""
    inputs = np.concatenate([batch for batch, _, _ in dataset.read(0, len(dataset))])
    return [feature_map.max(axis=(1, 2)).astype(np.float64) for feature_map in model.run(inputs)]


def test_json_holds_every_channels_statistics_over_every_image(gallery_run):
    out_dir, model, dataset = gallery_run[:3]
    for layer, maxima in zip(read_json(out_dir)['layers'], every_maximum(model, dataset)):
        assert layer['never_firing'] == [] and layer['quantile_relative_error'] == RELATIVE_ERROR
        assert 'classes' not in layer
        assert all('class' not in record for ranked in layer['channels'] for record in ranked)
        ranked = np.sort(maxima, axis=0)
        for channel, record in enumerate(layer['channel_statistics']):
            fires = int((maxima[:, channel] > 0).sum())
            assert record['fires'] == fires and record['firing_rate'] == fires / len(dataset)
            assert record['mean'] == pytest.approx(maxima[:, channel].mean(), rel=1e-15)
            assert record['std'] == pytest.approx(maxima[:, channel].std(), rel=1e-12)
            for percent, value in record['quantiles'].items():
                true = ranked[-(-int(percent) * len(dataset) // 100) - 1, channel]
                assert abs(value - true) <= RELATIVE_ERROR * true * (1 + 1e-12)
            assert 'selectivity' not in record and 'top_classes' not in record


def test_json_gives_the_class_of_every_entry_and_a_channel_firing_on_one_class_selectivity_1(classes_gallery_run):
    out_dir, model, dataset = classes_gallery_run[:3]
    for layer in read_json(out_dir)['layers']:
        assert layer['classes'] == ['bright', 'dark']
        for ranked in layer['channels']:
            assert [record['class'] for record in ranked] == [CLASSES[record['index']] for record in ranked]
        bright, dark = layer['channel_statistics']
        assert bright['selectivity'] == 1 and dark['selectivity'] == 1
        assert bright['fires'] == 7 and dark['fires'] == 3
        assert bright['top_classes'] == [['bright', NUM_SAMPLES]] and dark['top_classes'] == [['dark', NUM_SAMPLES]]


def test_channels_that_never_fire_are_printed_and_listed(dead_gallery_run):
    out_dir, printed = dead_gallery_run
    assert [line for line in printed.splitlines() if 'never fire' in line] == [
        f'{name}: 1 of 2 channels never fire on 10 images' for name in ('conv/Relu:0', 'pool/MaxPool:0')]
    for layer in read_json(out_dir)['layers']:
        assert layer['never_firing'] == [1] and layer['drawn_channels'] == [0]
        dead = layer['channel_statistics'][1]
        assert (dead['fires'], dead['firing_rate'], dead['mean'], dead['std']) == (0, 0, 0, 0)
        assert dead['quantiles'] == {'50': 0, '90': 0, '99': 0} and dead['selectivity'] is None


@pytest.mark.parametrize('classes', [None, CLASSES])
def test_a_merge_of_shards_with_statistics_and_classes_writes_the_gallery_of_a_single_run(tmp_path, classes):
    run_box_filter(tmp_path / 'single', classes=classes)
    for index in range(3):
        args = box_filter_args(tmp_path / 'states', num_samples=NUM_SAMPLES, num_shards=3, shard_index=index,
                               classes=classes)
        assert shards.run(BOX_FILTER_EXAMPLE, args) == 0
    paths = [state_path(str(tmp_path / 'states'), layer.name, index, 3) for layer in BOX_LAYERS for index in range(3)]
    assert merge(paths[::-1], tmp_path / 'merged') == 0
    for name in ('activations.json', 'index.html'):
        assert (tmp_path / 'merged' / name).read_bytes() == (tmp_path / 'single' / name).read_bytes(), name


def test_heatmap_is_for_single_runs(tmp_path, capsys):
    args = box_filter_args(tmp_path, num_shards=2, shard_index=0, heatmap=True)
    with pytest.raises(ValueError, match='--heatmap .* use it in a single run'):
        shards.run(BOX_FILTER_EXAMPLE, args)
    with pytest.raises(SystemExit) as exit_info:  # utils/merge_activations.py has no model to run
        merge([tmp_path / 'state.npz'], tmp_path / 'merged', '--heatmap')
    assert exit_info.value.code == 2 and 'unrecognized arguments: --heatmap' in capsys.readouterr().err
    assert vgg16_activations.parse_args([]).heatmap is False  # off by default
    assert vgg16_activations.parse_args(['--heatmap']).heatmap is True


# -- the weakest images (--bottom_k) -----------------------------------------------------------------------------

def weakest_brute_force(model, dataset, num_weakest):
    """Per layer, per channel, `(firing, index, (y, x))` of the `num_weakest` images of the lowest maxima (ties: the
    earlier image), each with the first position of its maximum, row-major: the slow, obvious way."""
    inputs = np.concatenate([batch for batch, _, _ in dataset.read(0, len(dataset))])
    lists = []
    for feature_map in model.run(inputs):
        channels = []
        for channel in range(feature_map.shape[-1]):
            entries = []
            for index, channel_map in enumerate(feature_map[..., channel]):
                y, x = divmod(int(channel_map.argmax()), channel_map.shape[1])
                entries.append((float(channel_map.max()), index, (y, x)))
            channels.append(sorted(entries, key=lambda entry: (entry[0], entry[1]))[:num_weakest])
        lists.append(channels)
    return lists


def test_json_holds_every_channels_weakest_images_as_brute_force_finds_them(bottom_gallery_run, gallery_run):
    out_dir, model, dataset, fields = bottom_gallery_run[:4]
    layers = read_json(out_dir)['layers']
    for index, (layer, expected) in enumerate(zip(layers, weakest_brute_force(model, dataset, BOTTOM_K))):
        field = fields[index]
        assert len(layer['weakest']) == len(layer['channels'])
        for records, entries in zip(layer['weakest'], expected):
            assert [(record['firing'], record['index'], tuple(record['feature_yx'])) for record in records] == entries
            assert [record['image'] for record in records] == [dataset.ids[index] for _, index, _ in entries]
            assert [record['box'] for record in records] == [field.recfield[y, x].tolist() for _, _, (y, x) in entries]
        assert layer['pictures']['bottom'] == layer['pictures']['crop'].replace('-crop.jpg', '-bottom.jpg')
    for layer in read_json(gallery_run[0])['layers']:  # none without --bottom_k
        assert 'weakest' not in layer and 'bottom' not in layer['pictures']


def test_the_bottom_picture_is_the_crop_montage_of_the_weakest_images(bottom_gallery_run):
    out_dir, model, dataset, fields = bottom_gallery_run[:4]
    display = np.concatenate([images for _, images, _ in dataset.read(0, len(dataset))])
    for index, (layer, expected) in enumerate(zip(read_json(out_dir)['layers'],
                                                  weakest_brute_force(model, dataset, BOTTOM_K))):
        field = fields[index]
        columns = [crop_column([display[image] for _, image, _ in expected[channel]],
                               [field.recfield[y, x] for _, _, (y, x) in expected[channel]], field.max())
                   for channel in layer['drawn_channels']]
        captions = [column_caption(channel, [expected[channel][0][0]]) for channel in layer['drawn_channels']]
        ok, encoded = cv2.imencode('.jpg', tile_columns(columns, captions))
        assert ok and (out_dir / layer['pictures']['bottom']).read_bytes() == encoded.tobytes()


def test_a_run_with_bottom_k_only_adds_the_weakest_images_to_a_run_without_it(bottom_gallery_run, gallery_run):
    with_weakest, without = bottom_gallery_run[0], gallery_run[0]
    assert sorted(os.listdir(with_weakest)) == sorted(
        os.listdir(without) + [name.replace('-crop', '-bottom') for name in os.listdir(without) if '-crop' in name])
    for name in os.listdir(without):
        if name.endswith('.jpg'):
            assert (with_weakest / name).read_bytes() == (without / name).read_bytes(), name
    document = read_json(with_weakest)
    for layer in document['layers']:
        del layer['weakest'], layer['pictures']['bottom']
    assert document == read_json(without)


def test_a_merge_of_shards_with_bottom_k_draws_a_single_run_and_refuses_states_without_it(bottom_gallery_run, tmp_path):
    for index in range(3):
        args = box_filter_args(tmp_path / 'states', num_samples=NUM_SAMPLES, num_shards=3, shard_index=index,
                               bottom_k=BOTTOM_K if index else 0)
        assert shards.run(BOX_FILTER_EXAMPLE, args) == 0
    paths = [state_path(str(tmp_path / 'states'), layer.name, index, 3) for layer in BOX_LAYERS for index in range(3)]
    with np.load(paths[0]) as without, np.load(paths[1]) as with_weakest:  # arrays only where asked for
        assert not [name for name in without.files if 'weakest' in name or 'bottom_k' in name]
        assert int(with_weakest['run_bottom_k']) == BOTTOM_K and 'weakest_firings' in with_weakest.files
    with pytest.raises(ValueError, match=r'they come from different --bottom_k \(2 and 0\)'):
        merge_states([ShardState.load(path) for path in paths[:3][::-1]])
    args = box_filter_args(tmp_path / 'states', num_samples=NUM_SAMPLES, num_shards=3, shard_index=0,
                           bottom_k=BOTTOM_K)
    assert shards.run(BOX_FILTER_EXAMPLE, args) == 0  # shard 0 again, now with the weakest lists
    assert merge(paths[::-1], tmp_path / 'merged') == 0
    names = sorted(os.listdir(bottom_gallery_run[0]))
    assert outputs(tmp_path / 'merged') == {name: (bottom_gallery_run[0] / name).read_bytes() for name in names}


# -- where the page cuts its patches ----------------------------------------------------------------------------

def wide_tracker(num_channels, height, width):
    """Two colour images of `height` x `width` on a 3x3 feature map, every channel firing."""
    rng = np.random.default_rng(5)
    features = rng.uniform(0.5, 2.0, (2, 3, 3, num_channels))
    return TopActivations(2).update(rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8), features)


@pytest.mark.parametrize('width', [12, 30000])  # 30000: two columns a row (a JPEG is at most 65,500 wide)
def test_montage_layout_finds_every_cell_of_layer_pictures(width):
    height, channels = 8, [0, 2, 3]
    tracker = wide_tracker(4, height, width)
    field = grid_field(3, 3, width)  # boxes reach row 7 at most: they fit the 8-row images
    full, crop = layer_pictures(tracker, field, channels)
    captions = [column_caption(channel, tracker.firings[channel]) for channel in channels]
    crop_size = field.max()
    rows = []
    for picture, (cell_height, cell_width), column_of in (
            (full, (height, width), full_column),
            (crop, crop_size, lambda images, boxes: crop_column(images, boxes, crop_size))):
        column_height = 2 * (cell_height + 2 * BORDER)
        origins, shape = montage_layout(cell_width + 2 * BORDER, column_height, captions)
        assert shape == picture.shape[:2]
        rows.append(len({top for _, top in origins}))
        for channel, (left, top) in zip(channels, origins):
            _, coords, _, images = tracker.channel(channel)
            expected = column_of(images, [field.recfield[y, x] for y, x in coords])
            np.testing.assert_array_equal(picture[top:top + column_height, left:left + cell_width + 2 * BORDER],
                                          expected)
    assert rows == ([2, 1] if width == 30000 else [1, 1])  # the whole images of the wide layer wrap into 2 rows


# -- heatmaps ----------------------------------------------------------------------------------------------------

def test_a_heatmap_is_centred_on_the_receptive_field_of_its_feature_pixel():
    field = grid_field(6, 6, 12, before=(1, 1), after=(3, 3))  # 4x4 boxes, stride 2, padding 1: centres 0.5 + 2i
    assert (field.size, field.stride, field.padding) == ((4, 4), (2, 2), (1, 1))
    np.testing.assert_array_equal(heatmap_centres(field, 0), 0.5 + 2 * np.arange(6))
    image = np.full((12, 12), 100, np.uint8)  # grey: drawn in colour
    feature_map = np.zeros((6, 6))
    assert (overlay_heatmap(image, feature_map, field, 1.0) == 100).all()  # no firing: the image unchanged
    feature_map[2, 3] = 1.0  # its box: rows 3..6, columns 5..8, centred at (4.5, 6.5)
    changed = np.abs(overlay_heatmap(image, feature_map, field, 1.0).astype(int) - 100).sum(axis=2)
    assert set(zip(*np.nonzero(changed == changed.max()))) == {(4, 6), (4, 7), (5, 6), (5, 7)}
    assert changed[:2].max() == 0 and changed[:, :4].max() == 0  # nothing a feature pixel away or more


def test_heatmap_centres_of_boxes_that_all_cover_the_image_spread_evenly():
    field = grid_field(4, 4, 8, before=(20, 20), after=(20, 20))  # every box is the whole 8x8 image
    assert field.size is None
    np.testing.assert_array_equal(heatmap_centres(field, 1), [0.5, 2.5, 4.5, 6.5])
    with pytest.raises(ValueError, match='does not fit'):
        overlay_heatmap(np.zeros((9, 8), np.uint8), np.zeros((4, 4)), field, 1.0)


def test_heatmaps_recompute_the_scan_maps_and_change_only_the_pictures(gallery_run, tmp_path):
    out_dir, model, dataset, fields, trackers = gallery_run
    layers = [(layer.name, fields[index], trackers[index], [0, 1]) for index, layer in enumerate(model.layers)]
    for (_, field, tracker, channels), maps in zip(layers, pipeline.channel_heatmaps(model, dataset, layers)):
        for channel in channels:
            assert maps[channel].shape == (NUM_SAMPLES, *field.feature_shape)
            np.testing.assert_array_equal(maps[channel].max(axis=(1, 2)), tracker.firings[channel])
            for rank, (y, x) in enumerate(tracker.coords[channel]):
                assert maps[channel][rank, y, x] == tracker.firings[channel][rank]
    run_box_filter(tmp_path / 'heatmap', heatmap=True)
    for name in sorted(os.listdir(out_dir)):
        same = (tmp_path / 'heatmap' / name).read_bytes() == (out_dir / name).read_bytes()
        assert same == (not name.endswith('.jpg')), name  # the gallery is the same: it cuts the pictures
    with pytest.raises(ValueError, match='give draw the dataset'):
        pipeline.draw(model, fields, trackers, str(tmp_path), 0, heatmap=True)


# -- the page ----------------------------------------------------------------------------------------------------

def test_the_box_filter_run_writes_and_records_its_attributions_and_effective_fields(explained_gallery_run):
    out_dir, printed = explained_gallery_run
    document = assert_explained_run(out_dir, printed, 'occlusion', {'occlusion_window': 'a quarter of the box',
                                                                    'occlusion_stride': 'half the window'},
                                    'occlusion', ERF_IMAGES)
    assert document['attribution']['reference'] == 0.0  # the middle of the value range -1 .. 1


@pytest.mark.parametrize('run', ['gallery_run', 'explained_gallery_run'])
def test_the_page_needs_nothing_but_the_files_beside_it(request, run):
    out_dir = request.getfixturevalue(run)[0]
    page = re.sub(r'<script>.*</script>', '', (out_dir / 'index.html').read_text(), flags=re.DOTALL)
    assert '<link' not in page and '@import' not in page
    references = re.findall(r'(?:src|href)="([^"]*)"|url\("([^"]*)"\)', page)  # src= matches data-full-src= too
    targets = {target for pair in references for target in pair if target}
    assert targets and not [target for target in targets if '//' in target or target.startswith('/')]
    files = {target for target in targets if not target.startswith('#')}
    # Every file but the page and the arrays (data for programs, named in activations.json) is shown or linked.
    assert files == set(os.listdir(out_dir)) - {'index.html', *EXPLANATION_FILES}
    explained = {name for name in files if name.endswith('-attr.jpg') or name.startswith('erf-')}
    layers = read_json(out_dir)['layers']
    assert explained == ({name for layer in layers for name in (layer['pictures']['attr'],
                                                                 layer['effective_receptive_field']['picture'])}
                         if run == 'explained_gallery_run' else set())


@pytest.fixture(scope='module')
def browser():
    """Headless Chromium through chromedriver, both Debian's; never a downloaded driver."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = f'{" and ".join(missing)} missing: apt-get install chromium chromium-driver'
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f'--user-data-dir={profile}')
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # a driver path: no download
        try:
            yield driver
        finally:
            driver.quit()


# The URL and natural width of every picture that a patch or the opened whole image shows.
LOADED_PICTURES = """
const done = arguments[arguments.length - 1];
const urls = new Set([...document.querySelectorAll('.patch, #modal .full')].map(
    element => getComputedStyle(element).backgroundImage).filter(url => url.startsWith('url(')).map(
    url => url.slice(5, -2)));
Promise.all([...urls].map(url => new Promise(resolve => {
  const image = new Image();
  image.onload = () => resolve([url, image.naturalWidth]);
  image.onerror = () => resolve([url, 0]);
  image.src = url;
}))).then(done);
"""


def test_the_page_in_a_browser_shows_every_channel_and_opens_the_whole_image(gallery_run, browser, tmp_path):
    out_dir = gallery_run[0]
    document = read_json(out_dir)
    browser.get((out_dir / 'index.html').as_uri())
    sections = browser.find_elements(By.CSS_SELECTOR, 'section.layer')
    assert [section.find_element(By.TAG_NAME, 'h2').text for section in sections] == [
        layer['name'] for layer in document['layers']]
    for section, layer in zip(sections, document['layers']):
        cards = section.find_elements(By.CSS_SELECTOR, '.card')
        assert [int(card.get_attribute('data-channel')) for card in cards] == layer['drawn_channels']
        for card in cards:
            patches = card.find_elements(By.CSS_SELECTOR, '.patch')
            assert len(patches) == NUM_SAMPLES and all(patch.size['width'] > 0 for patch in patches)
    loaded = dict(browser.execute_async_script(LOADED_PICTURES))
    crops = {layer['pictures']['crop'] for layer in document['layers']}
    assert {url.rsplit('/', 1)[-1] for url in loaded} == crops and all(loaded.values()), loaded

    modal = browser.find_element(By.ID, 'modal')
    assert not modal.is_displayed()
    patch = sections[-1].find_elements(By.CSS_SELECTOR, '.patch')[1]
    patch.click()
    WebDriverWait(browser, 10).until(lambda _: modal.is_displayed())
    record = document['layers'][-1]['channels'][0][1]
    assert record['image'] in modal.find_element(By.TAG_NAME, 'figcaption').text
    whole = modal.find_element(By.CSS_SELECTOR, '.full')
    assert whole.size['width'] > 0 and whole.size['height'] > 0
    loaded = dict(browser.execute_async_script(LOADED_PICTURES))
    full = document['layers'][-1]['pictures']['full']
    assert [loaded[url] > 0 for url in loaded if url.endswith('/' + full)] == [True]
    screenshot = tmp_path / 'gallery.png'
    assert browser.save_screenshot(str(screenshot))
    picture = cv2.imread(str(screenshot))
    assert picture is not None and picture.size and picture.std() > 0  # a page drawn, not a blank
    modal.click()
    WebDriverWait(browser, 10).until(lambda _: not modal.is_displayed())


# The computed background image of every patch, layer by layer: `[[file name, ...], ...]`.
PATCH_BACKGROUNDS = """
return [...document.querySelectorAll('section.layer')].map(section => [...section.querySelectorAll('.patch')].map(
    patch => getComputedStyle(patch).backgroundImage.slice(5, -2).split('/').pop()));
"""
# Whether every ERF picture of the page has loaded, and their `[file name, natural width]`.
ERF_PICTURES = """
const pictures = [...document.querySelectorAll('p.erf img')];
return [pictures.every(picture => picture.complete),
        pictures.map(picture => [picture.src.split('/').pop(), picture.naturalWidth])];
"""


def test_a_page_without_attributions_has_no_checkbox_and_no_effective_fields(gallery_run, browser):
    browser.get((gallery_run[0] / 'index.html').as_uri())
    assert browser.find_elements(By.ID, 'show-attributions') == []
    assert browser.find_elements(By.CSS_SELECTOR, 'p.erf') == []
    crops = [[layer['pictures']['crop']] * len(layer['drawn_channels']) * NUM_SAMPLES
             for layer in read_json(gallery_run[0])['layers']]
    assert browser.execute_script(PATCH_BACKGROUNDS) == crops


def test_the_checkbox_shows_every_patchs_attributions_and_hides_them_again(explained_gallery_run, browser):
    out_dir = explained_gallery_run[0]
    layers = read_json(out_dir)['layers']
    browser.get((out_dir / 'index.html').as_uri())
    body, checkbox = browser.find_element(By.TAG_NAME, 'body'), browser.find_element(By.ID, 'show-attributions')
    patches = [len(layer['drawn_channels']) * NUM_SAMPLES for layer in layers]
    crops = [[layer['pictures']['crop']] * count for layer, count in zip(layers, patches)]
    attributions = [[layer['pictures']['attr']] * count for layer, count in zip(layers, patches)]
    assert not checkbox.is_selected() and browser.execute_script(PATCH_BACKGROUNDS) == crops

    checkbox.click()
    WebDriverWait(browser, 10).until(lambda _: 'attributions' in body.get_attribute('class').split())
    assert checkbox.is_selected() and browser.execute_script(PATCH_BACKGROUNDS) == attributions
    loaded = dict(browser.execute_async_script(LOADED_PICTURES))
    assert sorted(url.rsplit('/', 1)[-1] for url in loaded) == sorted(layer['pictures']['attr'] for layer in layers)
    assert all(width > 0 for width in loaded.values()), loaded
    assert not browser.find_element(By.ID, 'modal').is_displayed()  # ticking opens no patch

    checkbox.click()
    WebDriverWait(browser, 10).until(lambda _: 'attributions' not in body.get_attribute('class').split())
    assert browser.execute_script(PATCH_BACKGROUNDS) == crops


def test_the_effective_field_pictures_of_the_page_load(explained_gallery_run, browser):
    out_dir = explained_gallery_run[0]
    layers = read_json(out_dir)['layers']
    browser.get((out_dir / 'index.html').as_uri())
    WebDriverWait(browser, 10).until(lambda _: browser.execute_script(ERF_PICTURES)[0])
    pictures = browser.execute_script(ERF_PICTURES)[1]
    assert [name for name, _ in pictures] == [layer['effective_receptive_field']['picture'] for layer in layers]
    assert all(width > 0 for _, width in pictures), pictures
    lines = [line.text for line in browser.find_elements(By.CSS_SELECTOR, 'p.erf')]
    assert all(line.startswith('Effective receptive field: 50 % of its weight in ') for line in lines), lines


# The data-channel of every card, layer by layer.
CARD_ORDER = """
return [...document.querySelectorAll('section.layer')].map(section => [...section.querySelectorAll('.card')].map(
    card => Number(card.dataset.channel)));
"""


def sort_options(browser):
    return [option.get_attribute('value') for option in browser.find_elements(By.CSS_SELECTOR, '#sort-channels option')]


def sort_by(browser, value):
    select = browser.find_element(By.ID, 'sort-channels')
    select.find_element(By.CSS_SELECTOR, f'option[value="{value}"]').click()
    return browser.execute_script(CARD_ORDER)


def test_cards_show_statistics_and_the_select_sorts_them_by_firing_rate_strength_or_selectivity(
        classes_gallery_run, browser):
    out_dir = classes_gallery_run[0]
    layers = read_json(out_dir)['layers']
    browser.get((out_dir / 'index.html').as_uri())
    for section, layer in zip(browser.find_elements(By.CSS_SELECTOR, 'section.layer'), layers):
        assert section.find_element(By.CSS_SELECTOR, 'p.never').text == '0 of 2 channels never fire on 10 images.'
        texts = [card.find_element(By.CSS_SELECTOR, '.stats').text
                 for card in section.find_elements(By.CSS_SELECTOR, '.card')]
        assert texts[0].startswith('fires on 70.0 % of the images (7)\n50/90/99 % quantiles: ')
        assert texts[1].endswith('selectivity 1.00; top images\' classes: dark 3')
    assert sort_options(browser) == ['channel', 'strongest', 'rate', 'selectivity']
    assert sort_by(browser, 'rate') == [[0, 1]] * 2  # fires on 7 images against 3
    strongest = [sorted(layer['drawn_channels'], key=lambda channel: -layer['channels'][channel][0]['firing'])
                 for layer in layers]
    assert sort_by(browser, 'strongest') == strongest
    assert sort_by(browser, 'selectivity') == [[0, 1]] * 2  # both 1: by channel
    assert sort_by(browser, 'channel') == [[0, 1]] * 2


def test_a_page_lists_channels_that_never_fire_and_sorts_without_selectivity(dead_gallery_run, gallery_run, browser):
    browser.get((dead_gallery_run[0] / 'index.html').as_uri())
    assert [line.text for line in browser.find_elements(By.CSS_SELECTOR, 'p.never')] == [
        '1 of 2 channels never fire on 10 images: channel 1.'] * 2
    browser.get((gallery_run[0] / 'index.html').as_uri())
    assert sort_options(browser) == ['channel', 'strongest', 'rate']
    rates = [[record['firing_rate'] for record in layer['channel_statistics']]
             for layer in read_json(gallery_run[0])['layers']]
    assert sort_by(browser, 'rate') == [sorted(range(len(layer_rates)), key=lambda channel: -layer_rates[channel])
                                        for layer_rates in rates]  # a stable sort: ties by channel


# Per layer, per card: the background image of its weakest patches, their number, and whether the label is there.
WEAKEST_ROWS = """
return [...document.querySelectorAll('section.layer')].map(section => [...section.querySelectorAll('.card')].map(
    card => [[...new Set([...card.querySelectorAll('.weakest .weak')].map(
                 patch => getComputedStyle(patch).backgroundImage.slice(5, -2).split('/').pop()))],
             card.querySelectorAll('.weakest .weak').length,
             card.querySelector('.weakest-label') !== null && card.querySelector('.weakest-label').textContent]));
"""


def test_the_page_shows_each_cards_weakest_images_in_a_second_row_cut_from_the_bottom_picture(
        bottom_gallery_run, gallery_run, browser):
    out_dir = bottom_gallery_run[0]
    layers = read_json(out_dir)['layers']
    browser.get((out_dir / 'index.html').as_uri())
    assert browser.execute_script(WEAKEST_ROWS) == [
        [[[layer['pictures']['bottom']], BOTTOM_K, 'Weakest:']] * len(layer['drawn_channels']) for layer in layers]
    card = browser.find_element(By.CSS_SELECTOR, 'section.layer .card')
    strongest = card.find_elements(By.CSS_SELECTOR, '.patch')
    weakest = card.find_elements(By.CSS_SELECTOR, '.weak')
    assert len(strongest) == NUM_SAMPLES and all(patch.size == strongest[0].size for patch in weakest)
    assert min(patch.location['y'] for patch in weakest) > max(patch.location['y'] for patch in strongest)  # below
    assert len({patch.location['y'] for patch in weakest}) == 1  # in a row
    record = layers[0]['weakest'][layers[0]['drawn_channels'][0]][0]
    assert f'weakest #1: firing {record["firing"]:.4g} on {record["image"]}' in weakest[0].get_attribute('aria-label')
    loaded = dict(browser.execute_async_script(LOADED_PICTURES.replace("'.patch, #modal .full'", "'.weak'")))
    assert sorted(url.rsplit('/', 1)[-1] for url in loaded) == sorted(layer['pictures']['bottom'] for layer in layers)
    assert all(width > 0 for width in loaded.values()), loaded
    browser.get((gallery_run[0] / 'index.html').as_uri())  # none without --bottom_k
    assert browser.find_elements(By.CSS_SELECTOR, '.weakest, .weak') == []
