"""The gallery of a run: `index.html`, a page to browse the drawn channels, and `activations.json`, every
tracked channel's strongest images as data.

The page is static and self-contained (inline CSS and JavaScript, nothing fetched from elsewhere), so it works
opened from disk. It cuts every patch out of the `-crop.jpg`/`-full.jpg` pictures already written (CSS
sprites): a layer costs its two pictures, whatever its number of channels; with `--bottom_k` a card's second row,
its weakest images, comes out of `-bottom.jpg` the same way. The layout of those pictures is the
one `utils.pictures.montage.layer_pictures` makes, worked out by `montage_layout`. The README documents the JSON schema.
"""

import collections
import contextlib
import html
import json
import os
import urllib.parse

import numpy as np

from utils.base.channel_statistics import QUANTILES, RELATIVE_ERROR
from utils.base.files import atomic_write
from utils.pictures.montage import BORDER, column_caption, columns_per_row, tile_columns

JSON_VERSION = 1
GALLERY_FILES = ('activations.json', 'index.html')  # written last, after every picture of a run
CROP_DISPLAY = 96  # pixels the larger side of a patch takes on the page
FULL_DISPLAY = 512  # pixels the larger side of a whole image takes when a patch is clicked

GalleryLayer = collections.namedtuple('GalleryLayer', 'name description field tracker channels pictures '
                                                     'attribution_picture erf erf_picture bottom_picture')
GalleryLayer.__new__.__defaults__ = (None, None, None, None)
GalleryLayer.__doc__ = """What the gallery shows of a layer: its tensor name, its
`utils.pictures.drawing.describe_layer` line, its `recfield.ReceptiveField` and `activations.TopActivations`, the
channels drawn (one picture column each, in order), the `(full_path, crop_path)` of its pictures (None when no
channel was drawn), and where asked for (else None) the path of its `-attr` picture (`--attribution`), its
`recfield.EffectiveReceptiveField` and the path of its picture (`--erf`), and the path of its `-bottom` picture
(`--bottom_k`: the tracker's `weakest` lists)."""


def montage_layout(column_width, column_height, captions):
    """Where `utils.pictures.montage.tile_columns` puts columns of one size with these captions.

    Args:
        column_width, column_height: the size of every column, borders included.
        captions: one caption per column.

    Returns:
        `(origins, (height, width))`: the `(left, top)` pixel of every column below its caption, and the size of
        the picture. Columns too many for one row wrap into further rows
        (`utils.pictures.montage.columns_per_row`), each row as high as its captions need.
    """
    per_row = columns_per_row(column_width)
    origins, top = [], 0
    for start in range(0, len(captions), per_row):
        row = captions[start:start + per_row]
        empty = [np.zeros((0, column_width, 3), np.uint8)] * len(row)
        caption_height = tile_columns(empty, row).shape[0]
        origins += [(number * column_width, top + caption_height) for number in range(len(row))]
        top += caption_height + column_height
    return origins, (top, min(len(captions), per_row) * column_width)


def entry_key(layer_name, channel, rank):
    """The key of a kept entry's attribution in `attributions.npz`: `<layer>/<channel>/<rank>`, rank 0 the
    strongest."""
    return f'{layer_name}/{int(channel)}/{int(rank)}'


def remove_gallery(out_dir, also=()):
    """Removes `activations.json` and `index.html` of an earlier run from `out_dir`, if there, and the files named
    in `also` (other files of a run that it writes with its gallery)."""
    for name in (*GALLERY_FILES, *also):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out_dir, name))


def write_gallery(out_dir, layers, image_names=None, record=None):
    """Writes `<out_dir>/activations.json` and `<out_dir>/index.html`, atomically.

    Args:
        out_dir: an existing folder, holding the layers' pictures.
        layers: list of `GalleryLayer`.
        image_names: the dataset's image names, indexed by dataset index (a list or a dict, e.g.
            `utils.core.pipeline.Dataset.ids`); None names images by their index.
        record: None, or more entries of the JSON document's top level (how attributions and effective receptive
            fields were made, `utils.core.attributing.describe_options`).

    Returns:
        `(json_path, html_path)`.
    """
    def name_of(index):
        return str(image_names[int(index)]) if image_names is not None else f'image {int(index)}'

    json_path, html_path = (os.path.join(out_dir, name) for name in GALLERY_FILES)
    document = {'version': JSON_VERSION, **(record or {}),
                'layers': [_layer_record(layer, name_of) for layer in layers]}
    with atomic_write(json_path, 'w') as stream:
        json.dump(document, stream, allow_nan=False)  # strict JSON: no NaN or Infinity
        stream.write('\n')
    with atomic_write(html_path, 'w') as stream:
        stream.write(_page(layers, name_of))
    return json_path, html_path


def _ranked(layer, channel, name_of, attributed=False, tracker=None):
    """A channel's strongest images as records of activations.json, strongest first (those of `tracker` instead,
    the layer's `weakest` lists); `attributed`: with the key of each one's attribution in `attributions.npz`; with each
    one's class where the images have classes."""
    tracker = layer.tracker if tracker is None else tracker
    firings, coords, indices, _ = tracker.channel(channel)
    classes = tracker.entry_classes(channel) or [None] * len(indices)
    return [{'firing': float(firing), 'image': name_of(index), 'index': int(index), 'feature_yx': [int(y), int(x)],
             'box': [int(value) for value in layer.field.recfield[y, x]],
             **({'attribution': entry_key(layer.name, channel, rank)} if attributed else {}),
             **({'class': name} if name is not None else {})}
            for rank, (firing, (y, x), index, name) in enumerate(zip(firings, coords, indices, classes))]


def _number(value):
    """A float for JSON, None for NaN (a statistic without images)."""
    return None if np.isnan(value) else float(value)


def channel_statistics(tracker):
    """Every channel's statistics (`utils.base.channel_statistics.ChannelStatistics`) as records of activations.json:
    how many images make it fire and their share, the mean, standard deviation and quantiles of its maxima, and, where the
    images have classes, its class selectivity and the classes of its kept images, most frequent first."""
    statistics = tracker.statistics
    num_images = statistics.num_images
    fires, means, stds = statistics.firing_counts, statistics.means(), statistics.stds()
    quantiles = statistics.quantiles()
    records = [{'fires': int(count), 'firing_rate': _number(count / num_images if num_images else np.nan),
                'mean': _number(mean), 'std': _number(std),
                'quantiles': {str(percent): _number(value) for percent, value in zip(QUANTILES, values)}}
               for count, mean, std, values in zip(fires, means, stds, quantiles)]
    if statistics.class_names:
        for channel, (record, selectivity) in enumerate(zip(records, statistics.selectivities())):
            kept = collections.Counter(tracker.entry_classes(channel) or ())
            record['selectivity'] = _number(selectivity)
            record['top_classes'] = [[name, count] for name, count in sorted(kept.items(), key=lambda item: (
                -item[1], item[0]))]
    return records


def never_firing_line(tracker):
    """`<d> of <C> channels never fire on <N> images`."""
    return (f'{len(tracker.statistics.never_firing)} of {tracker.num_channels} channels never fire on '
            f'{tracker.num_seen} images')


def _erf_record(erf, picture):
    (half_h, half_w), (most_h, most_w) = erf.mass_sides()
    return {'feature_yx': list(erf.feature_yx), 'box': erf.box, 'exact_size': list(erf.exact_size),
            'mass_50': [half_h, half_w], 'mass_90': [most_h, most_w], 'images': erf.num_images, 'method': erf.method,
            'picture': os.path.basename(picture)}


def _layer_record(layer, name_of):
    field, tracker = layer.field, layer.tracker
    geometry = None if field.size is None else {
        key: [int(value) for value in getattr(field, key)] for key in ('size', 'stride', 'padding')}
    pictures = None if layer.pictures is None else dict(zip(('full', 'crop'), map(os.path.basename, layer.pictures)))
    if layer.attribution_picture is not None:
        pictures['attr'] = os.path.basename(layer.attribution_picture)
    if layer.bottom_picture is not None:
        pictures['bottom'] = os.path.basename(layer.bottom_picture)
    weakest = {} if tracker.weakest is None else {'weakest': [
        _ranked(layer, channel, name_of, tracker=tracker.weakest) for channel in range(tracker.num_channels)]}
    drawn = set(int(channel) for channel in layer.channels) if layer.attribution_picture is not None else set()
    return {'name': layer.name, 'feature_map': [*map(int, field.feature_shape), int(tracker.num_channels)],
            'image_size': [int(field.height), int(field.width)], 'receptive_field': geometry,
            **({'local_receptive_field': True} if getattr(field, 'local', False) else {}),
            'largest_box': list(field.max()), 'images_seen': int(tracker.num_seen),
            'drawn_channels': [int(channel) for channel in layer.channels], 'pictures': pictures,
            **({} if layer.erf is None else {'effective_receptive_field': _erf_record(layer.erf, layer.erf_picture)}),
            'channels': [_ranked(layer, channel, name_of, channel in drawn) for channel in range(tracker.num_channels)],
            **weakest,
            'never_firing': [int(channel) for channel in tracker.statistics.never_firing],
            'quantile_relative_error': RELATIVE_ERROR,
            **({'classes': list(tracker.statistics.class_names)} if tracker.statistics.class_names else {}),
            'channel_statistics': channel_statistics(tracker)}


_STYLE = """
body { font-family: sans-serif; margin: 1em 2em; background: #fafafa; color: #222; }
nav a { margin-right: 1em; }
.field { font-family: monospace; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #ccc; border-radius: 4px; padding: 6px 8px;
        content-visibility: auto; contain-intrinsic-size: auto 300px; }
.card h3 { margin: 0 0 4px; font-size: 1em; }
.sample { display: flex; align-items: center; gap: 8px; margin: 4px 0; font-size: 0.8em; }
.patch { padding: 0; border: 1px solid #888; cursor: zoom-in; image-rendering: pixelated;
         background-repeat: no-repeat; }
.where { max-width: 14em; overflow-wrap: anywhere; }
#modal { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.8); display: flex; align-items: center;
         justify-content: center; cursor: zoom-out; }
#modal[hidden] { display: none; }
#modal figure { margin: 0; color: #fff; text-align: center; }
#modal .full { image-rendering: pixelated; background-repeat: no-repeat; margin: auto; }
.erf { display: flex; align-items: center; gap: 12px; }
.erf img { width: 128px; image-rendering: pixelated; }
.stats { margin: 0 0 4px; font-size: 0.8em; color: #555; max-width: 16em; }
"""

# Only on pages with weakest images (`--bottom_k`): a row of patches under a card's strongest ones.
_WEAKEST_STYLE = """
.weakest-label { margin: 6px 0 2px; font-size: 0.8em; color: #555; }
.weakest { display: flex; gap: 6px; font-size: 0.8em; }
.weak-sample { display: flex; flex-direction: column; align-items: center; }
.weak { box-sizing: border-box; border: 1px solid #888; image-rendering: pixelated; background-repeat: no-repeat; }
"""

# Shows the clicked patch's whole image, cut out of its layer's -full picture at the patch's data-full origin.
_SCRIPT = """
const modal = document.getElementById('modal');
const full = modal.querySelector('.full');
function numbers(text) { return text.split(',').map(Number); }
function showFull(patch) {
  const layer = patch.closest('.layer');
  const [width, height] = numbers(layer.dataset.fullCell);
  const [pictureWidth, pictureHeight] = numbers(layer.dataset.fullSize);
  const [left, top] = numbers(patch.dataset.full);
  let scale = FULL_DISPLAY / Math.max(width, height);
  scale = scale >= 1 ? Math.floor(scale) : scale;
  full.style.width = width * scale + 'px';
  full.style.height = height * scale + 'px';
  full.style.backgroundImage = 'url("' + layer.dataset.fullSrc + '")';
  full.style.backgroundSize = pictureWidth * scale + 'px ' + pictureHeight * scale + 'px';
  full.style.backgroundPosition = -left * scale + 'px ' + -top * scale + 'px';
  modal.querySelector('figcaption').textContent = patch.getAttribute('aria-label');
  modal.hidden = false;
}
document.addEventListener('click', event => {
  const patch = event.target.closest('.patch');
  if (patch) showFull(patch);
  else if (event.target.closest('#modal')) modal.hidden = true;
});
document.addEventListener('keydown', event => { if (event.key === 'Escape') modal.hidden = true; });
// Orders every layer's cards by the chosen key, largest first (channels without it last), ties by channel.
const sorting = document.getElementById('sort-channels');
sorting.addEventListener('change', () => {
  const key = sorting.value;
  const value = card => key === 'channel' || card.dataset[key] === undefined ? -Infinity : Number(card.dataset[key]);
  document.querySelectorAll('.cards').forEach(cards => {
    const sorted = [...cards.children].sort((a, b) => value(b) - value(a) || a.dataset.channel - b.dataset.channel);
    sorted.forEach(card => cards.appendChild(card));
  });
});
const attributions = document.getElementById('show-attributions');
if (attributions) attributions.addEventListener('change', () => {
  document.body.classList.toggle('attributions', attributions.checked);
});
""".replace('FULL_DISPLAY', str(FULL_DISPLAY))


def _px(value):
    return f'{value:.2f}'.rstrip('0').rstrip('.') + 'px'


def _layer_section(number, layer, name_of):
    """The `<section>` of one layer: its line, and a card per drawn channel."""
    escape = html.escape
    never = layer.tracker.statistics.never_firing
    listed = f': channel{"s" if len(never) > 1 else ""} {", ".join(map(str, never))}' if len(never) else ''
    head = (f'<section class="layer L{number}" id="layer-{number}"{{data}}>\n<h2>{escape(layer.name)}</h2>\n'
            f'<p class="field">{escape(layer.description)}</p>\n'
            f'<p class="never">{never_firing_line(layer.tracker)}{listed}.</p>\n')
    erf_line = ''
    if layer.erf is not None:
        erf_url = urllib.parse.quote(os.path.basename(layer.erf_picture), safe='')
        erf_line = (f'<p class="erf"><a href="{erf_url}"><img src="{erf_url}" alt="effective receptive field"></a>'
                    f'<span>Effective receptive field: {escape(layer.erf.summary())}.</span></p>\n')
    if layer.pictures is None:
        return head.format(data='') + erf_line + '<p>No channel fires on these images: nothing drawn.</p>\n</section>\n'
    # Relative URLs, percent-encoded: a file name is not a URL ('%', '#', '?' and spaces mean something there).
    full_url, crop_url = (urllib.parse.quote(os.path.basename(path), safe='') for path in layer.pictures)
    full_name, crop_name = (html.escape(os.path.basename(path)) for path in layer.pictures)
    tracker, channels = layer.tracker, list(layer.channels)
    image_height, image_width = tracker.channel(channels[0])[3][0].shape[:2]
    crop_height, crop_width = layer.field.max()
    captions = [column_caption(channel, tracker.firings[channel]) for channel in channels]
    rows = tracker.firings.shape[1]
    full_origins, (full_height, full_width) = montage_layout(
        image_width + 2 * BORDER, rows * (image_height + 2 * BORDER), captions)
    crop_origins, (picture_height, picture_width) = montage_layout(
        crop_width + 2 * BORDER, rows * (crop_height + 2 * BORDER), captions)
    scale = CROP_DISPLAY / max(crop_height, crop_width, 1)  # 0 for a layer that does not depend on its input
    data = (f' data-full-src="{full_url}" data-full-size="{full_width},{full_height}"'
            f' data-full-cell="{image_width},{image_height}"')
    weakest, bottom_link, bottom_style, bottom_origins = tracker.weakest, '', '', [None] * len(channels)
    if layer.bottom_picture is not None:  # the weakest images' crops, laid out as the strongest ones'
        bottom_url = urllib.parse.quote(os.path.basename(layer.bottom_picture), safe='')
        bottom_link = f', <a href="{bottom_url}">{html.escape(os.path.basename(layer.bottom_picture))}</a>'
        bottom_origins, (bottom_height, bottom_width) = montage_layout(
            crop_width + 2 * BORDER, weakest.firings.shape[1] * (crop_height + 2 * BORDER),
            [column_caption(channel, weakest.firings[channel]) for channel in channels])
        bottom_style = (f' .L{number} .weak {{ width: {_px(crop_width * scale)}; height: {_px(crop_height * scale)}; '
                        f'background-image: url("{bottom_url}"); '
                        f'background-size: {_px(bottom_width * scale)} {_px(bottom_height * scale)}; }}')
    parts = [head.format(data=data), erf_line,
             f'<p>Pictures: <a href="{crop_url}">{crop_name}</a>, <a href="{full_url}">{full_name}</a>{bottom_link}'
             '</p>\n',
             f'<style>.L{number} .patch {{ width: {_px(crop_width * scale)}; height: {_px(crop_height * scale)}; '
             f'background-image: url("{crop_url}"); '
             f'background-size: {_px(picture_width * scale)} {_px(picture_height * scale)}; }}'
             + ('' if layer.attribution_picture is None else
                f' .attributions .L{number} .patch {{ background-image: url("'
                f'{urllib.parse.quote(os.path.basename(layer.attribution_picture), safe="")}"); }}')
             + bottom_style + '</style>\n', '<div class="cards">\n']
    statistics = channel_statistics(tracker)
    for channel, (crop_left, crop_top), (full_left, full_top), bottom_origin in zip(channels, crop_origins,
                                                                                   full_origins, bottom_origins):
        parts.append(_card_head(channel, tracker.firings[channel, 0], statistics[channel]))
        for rank, record in enumerate(_ranked(layer, channel, name_of)):
            x = crop_left + BORDER
            y = crop_top + rank * (crop_height + 2 * BORDER) + BORDER
            full_y = full_top + rank * (image_height + 2 * BORDER) + BORDER
            feature_y, feature_x = record['feature_yx']
            label = (f'{layer.name} channel {channel}, #{rank + 1}: firing {record["firing"]:.4g} on '
                     f'{record["image"]} at feature (y, x) = ({feature_y}, {feature_x}), box {record["box"]}')
            parts.append(
                f'<div class="sample"><button class="patch" style="background-position: {_px(-x * scale)} '
                f'{_px(-y * scale)}" data-full="{full_left + BORDER},{full_y}" aria-label="{escape(label)}" '
                f'title="{escape(record["image"])}"></button><span class="where">{record["firing"]:.4g}<br>'
                f'{escape(record["image"])}<br>(y, x) = ({feature_y}, {feature_x})</span></div>\n')
        if bottom_origin is not None:
            parts.append(_weakest_row(layer, channel, name_of, bottom_origin, crop_height, scale))
        parts.append('</div>\n')
    parts.append('</div>\n</section>\n')
    return ''.join(parts)


def _weakest_row(layer, channel, name_of, origin, cell_height, scale):
    """A card's row of its weakest images (`--bottom_k`), weakest first, cut from the `-bottom` picture whose column of
    the channel starts at `origin`, `(left, top)`; each with its firing below it and the rest in its label."""
    left, top = origin
    cells = []
    for rank, record in enumerate(_ranked(layer, channel, name_of, tracker=layer.tracker.weakest)):
        y = top + rank * (cell_height + 2 * BORDER) + BORDER
        feature_y, feature_x = record['feature_yx']
        label = html.escape(f'{layer.name} channel {channel}, weakest #{rank + 1}: firing {record["firing"]:.4g} on '
                            f'{record["image"]} at feature (y, x) = ({feature_y}, {feature_x}), box {record["box"]}')
        cells.append(f'<span class="weak-sample"><span class="weak" role="img" style="background-position: '
                     f'{_px(-(left + BORDER) * scale)} {_px(-y * scale)}" aria-label="{label}" title="{label}"></span>'
                     f'{record["firing"]:.4g}</span>')
    return '<p class="weakest-label">Weakest:</p>\n<div class="weakest">' + ''.join(cells) + '</div>\n'


def _card_head(channel, strongest, record):
    """A card's opening: its sort keys (`_SCRIPT`), its title and its statistics."""
    selectivity = record.get('selectivity')
    keys = (f' data-strongest="{float(strongest)!r}" data-rate="{record["firing_rate"]!r}"'
            + ('' if selectivity is None else f' data-selectivity="{selectivity!r}"'))
    quantiles = ', '.join(f'{value:.4g}' for value in record['quantiles'].values())
    lines = [f'fires on {record["firing_rate"] * 100:.1f} % of the images ({record["fires"]})',
             f'{"/".join(record["quantiles"])} % quantiles: {quantiles}']
    if 'selectivity' in record:
        classes = ', '.join(f'{html.escape(name)} {count}' for name, count in record['top_classes'])
        lines.append(f'selectivity {"-" if selectivity is None else f"{selectivity:.2f}"}; top images\' classes: '
                     f'{classes}')
    return (f'<div class="card" data-channel="{channel}"{keys}><h3>channel {channel}</h3>\n'
            f'<p class="stats">{"<br>".join(lines)}</p>\n')


def _sort_control(layers):
    """The select that orders every layer's cards (`_SCRIPT`); by selectivity where the images have classes."""
    options = [('channel', 'channel'), ('strongest', 'strongest firing'), ('rate', 'firing rate')]
    if any(layer.tracker.statistics.class_names for layer in layers):
        options.append(('selectivity', 'class selectivity'))
    return ('<p><label>Sort channels by <select id="sort-channels">'
            + ''.join(f'<option value="{value}">{text}</option>' for value, text in options)
            + '</select></label></p>\n')


def _page(layers, name_of):
    nav = ' '.join(f'<a href="#layer-{number}">{html.escape(layer.name)}</a>' for number, layer in enumerate(layers))
    sections = ''.join(_layer_section(number, layer, name_of) for number, layer in enumerate(layers))
    weakest = any(layer.bottom_picture is not None for layer in layers)
    style, weakest_line = (_STYLE + _WEAKEST_STYLE, 'Under them, the images it fires on the least (the lowest '
                           'maxima), weakest first: the patches where it fires most on each. ') if weakest else (
        _STYLE, '')
    toggle = ('' if all(layer.attribution_picture is None for layer in layers) else
              '<p><label><input type="checkbox" id="show-attributions"> Show attributions: over every patch, red where '
              'its pixels raise the firing, blue where they lower it (attributions.npz).</label></p>\n')
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Strongest activations'
            f'</title>\n<style>{style}</style>\n</head>\n<body>\n<h1>Strongest activations</h1>\n'
            '<p>Every card is a channel, with the image patches (receptive fields of the strongest feature pixel) '
            'that make it fire the most, strongest first: the firing, the image and the feature-map position. '
            f'{weakest_line}Click a patch to see its whole image with the patch boxed. All tracked channels, as data: '
            f'<a href="activations.json">activations.json</a>. Quantiles are within {RELATIVE_ERROR * 100:.2f} % of '
            f'the true ones.</p>\n{toggle}{_sort_control(layers)}<nav>{nav}</nav>\n{sections}'
            '<div id="modal" hidden><figure><div class="full"></div><figcaption></figcaption></figure></div>\n'
            f'<script>{_SCRIPT}</script>\n</body>\n</html>\n')
