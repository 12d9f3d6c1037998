"""`text`: where the text is, by PP-OCR's DB text detector (the ONNX model that rapidocr ships).

M. Liao et al., "Real-time Scene Text Detection with Differentiable Binarization", AAAI 2020.
The network predicts a per-pixel text probability; its connected regions are text lines shrunk by
construction, so each is grown back (DB's "unclip") into a coarse line region, and
`tasks.masks_text.refine_text_mask` then cuts that region down to the stroke pixels: the hole
becomes as small as the letters, not their box.

The detector fires on some text-like photo structure (a cat's eyes, a saucer's rim), so each
region is confirmed by the PP-OCR recogniser (CRNN/SVTR with CTC) and kept only if it reads as at
least two characters with rapidocr's own confidence floor. The model files are read from the
installed rapidocr package (no download, ever); onnxruntime runs them on CUDA when the installed
onnxruntime offers it, else on the CPU.

Two passes beyond the plain one (benchmarks/detect_benchmark.py, benchmarks/results/detect.md):

- tiles: a photo shrunk to be detected (a 4 MP frame to the network's 2016 px) is detected in tiles
  of 960 network px at the same scale. The network's squeeze-excitation gates average over its
  whole input, and text in a dark corner of a bright frame got no probability at all (strings
  found on 40 listing overlays: 78% -> 88%; 0.68 -> 1.07 s per 4 MP frame on one thread).
  Enlarged images (small photos, the Measure check's crops) stay whole: there a tile edge only
  cuts lines;
- local contrast (`local_contrast`): faint and 30-60% transparent captions, which the network does
  not see against a bright frame, are found on the photo's detail over its local spread; texture
  reads there as digits ("0000" at 0.73-0.80 confidence), so its regions need 0.85. It costs about
  as much again as the tiles (`contrast_sigma: 0` turns it off).

Inverted, CLAHE-stretched, chroma-only and 1.5x passes found nothing the tiles did not.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tasks.masks import nearest_labels
from tasks.masks_text import continue_lines, refine_text_mask
from tasks.settings import TextDetectConfig
from tasks.stages import DetectStage

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"


def bundled_model(name: str) -> Path:
    """Path of a model file inside the installed rapidocr wheel; fails loudly if it is missing."""
    try:
        import rapidocr
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise RuntimeError("the text detector needs the `rapidocr` package (pip install rapidocr)") from exc
    path = Path(rapidocr.__file__).parent / "models" / name
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: this rapidocr version does not ship {name}; pin the one in pyproject.toml")
    return path


def onnx_session(path: Path, device: str = "auto", threads: int = 0):
    """An onnxruntime session on CUDA when it is offered (and allowed), else the CPU.

    `threads`: CPU threads for one call (intra-op; operators run one after another). Partitions give
    the parallelism, so a worker's partition task calls with as many threads as torch has
    (`torch_threads`); 0 = onnxruntime's default, one per physical core."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def text_reader(device: str = "auto", threads: int = 0):
    """rapidocr's OCR (detect + recognise) on the bundled models: the detector's confirmation, and
    the ghost check of tests and benchmarks. `threads`: as `onnx_session`'s.

    Every model path is given explicitly, so rapidocr never reaches its download code.
    """
    import onnxruntime as ort
    from rapidocr import RapidOCR

    cuda = device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers()
    return RapidOCR(params={
        "EngineConfig.onnxruntime.use_cuda": cuda,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1 if threads else -1,
        "Det.model_path": str(bundled_model(DET_MODEL)),
        "Rec.model_path": str(bundled_model(REC_MODEL)),
        "Cls.model_path": str(bundled_model("ch_ppocr_mobile_v2.0_cls_mobile.onnx")),
        "Global.use_cls": False,
        "Global.log_level": "error",
    })


def tiles(height: int, width: int, scale: float, tile: int, overlap: int) -> list[tuple[slice, slice]]:
    """Windows (rows, cols) that cover an image detected at `scale` in tiles of at most about `tile`
    network pixels a side, neighbours sharing `overlap`; the whole image when it fits one tile, when
    `tile` is 0, or when it is enlarged (scale > 1: a small photo, a crop, a pass for small text,
    where a tile edge would only cut lines: the context a large photo's shrinking drowns text in is
    not there)."""
    if not tile or scale > 1 or max(height, width) * scale <= tile:
        return [(slice(0, height), slice(0, width))]

    def spans(length: int) -> list[slice]:
        side, shared = tile / scale, min(overlap, tile // 2) / scale
        count = max(1, int(np.ceil((length - shared) / (side - shared))))
        size = min(length, int(np.ceil((length + (count - 1) * shared) / count)))
        return [slice(start, start + size) for start in np.linspace(0, length - size, count).round().astype(int)]

    return [(rows, cols) for rows in spans(height) for cols in spans(width)]


def local_contrast(image: np.ndarray, sigma: float) -> np.ndarray:
    """Luminance minus its Gaussian (`sigma`) over its local spread, as a grey RGB image around 128.

    A 30-60% transparent watermark or a faint caption changes the photo by 8-50 grey levels, which
    the detector, trained on printed text, does not see against a bright frame; divided by the
    local spread of the detail (its Gaussian over 4 sigma), the letters' edges stand out as much as
    any caption's, while flat sky and smooth bokeh stay grey. The recogniser confirms on this image
    too, so texture that does not read as characters is not kept."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    lum = grey.astype(np.float32)
    detail = lum - cv2.GaussianBlur(lum, (0, 0), sigma)
    spread = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 4 * sigma)) + 2.0
    return cv2.cvtColor(np.clip(128 + 48 * detail / spread, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


SAME_LINE = 0.5  # of the shorter core's height: two cores whose rows overlap this much are one line
LINE_LIKE = 2.0  # a band of cores this many times wider than high is a line of its own, not a raised glyph


def split_lines(regions: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """`regions` (HxW bool) labelled one line per label (int32, 0 = none). A connected region is
    one line unless the detector's `cores` in it (its kernels: lines shrunk by construction) fall
    into bands of rows that overlap less than SAME_LINE of the shorter: stacked lines whose grown
    regions touch. Such a region is cut between them, each pixel going to the line of its nearest
    core. Cores of one line (its words, a lone glyph beside them) share its rows and stay one line;
    a band less than LINE_LIKE times wider than high (a raised ©, a superscript) goes with the
    line nearest it. Only horizontal text is told apart; a tilted stack stays one region."""
    labels = np.zeros(regions.shape, dtype=np.int32)
    rows, cols = np.flatnonzero(regions.any(axis=1)), np.flatnonzero(regions.any(axis=0))
    if rows.size == 0:
        return labels
    # Labelling writes a 32-bit label per pixel: only the regions' bounding box is worth labelling.
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    inside = regions[box].astype(np.uint8)
    count, within = cv2.connectedComponents(inside, connectivity=8)
    found, core_labels, stats, _ = cv2.connectedComponentsWithStats((cores[box] & regions[box]).astype(np.uint8), connectivity=8)
    region_of = np.zeros(found, dtype=np.int64)
    ys, xs = np.nonzero(core_labels)
    region_of[core_labels[ys, xs]] = within[ys, xs]
    following = count
    for region in range(1, count):
        members = np.flatnonzero(region_of == region)
        if members.size < 2:
            continue
        band_of = _row_bands(stats[members, cv2.CC_STAT_TOP], stats[members, cv2.CC_STAT_HEIGHT],
                             stats[members, cv2.CC_STAT_WIDTH])
        if band_of.max() == 0:
            continue
        # Each pixel of the region goes to the line of its nearest core.
        x, y, w, h = cv2.boundingRect((within == region).astype(np.uint8))
        window = within[y:y + h, x:x + w] == region
        band_of_core = np.zeros(found, dtype=np.int64)
        band_of_core[members] = band_of + 1
        band = band_of_core[nearest_labels(core_labels[y:y + h, x:x + w] * window)] - 1
        within[y:y + h, x:x + w][window] = np.where(band == 0, region, following + band - 1)[window]
        following += int(band_of.max())
    labels[box] = within
    return labels


def _row_bands(tops: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The line (0, 1, ...) each of a region's cores is in: cores whose rows overlap by SAME_LINE of
    the shorter's height are in one band, and so is what overlaps either; a band that is not
    LINE_LIKE joins the line-like band whose rows' middle is nearest its own."""
    count = len(tops)
    band = np.arange(count)

    def root(k: int) -> int:
        while band[k] != k:
            k = band[k]
        return k

    for a in range(count):
        for b in range(a + 1, count):
            overlap = min(tops[a] + heights[a], tops[b] + heights[b]) - max(tops[a], tops[b])
            if overlap >= SAME_LINE * min(heights[a], heights[b]):
                band[root(a)] = root(b)
    roots = np.array([root(k) for k in range(count)], dtype=np.int64)
    bands = np.unique(roots)
    top = np.array([tops[roots == r].min() for r in bands])
    bottom = np.array([(tops + heights)[roots == r].max() for r in bands])
    line_like = np.array([widths[roots == r].sum() for r in bands]) >= LINE_LIKE * (bottom - top)
    if np.count_nonzero(line_like) < 2:
        return np.zeros(count, dtype=np.int64)
    middle = (top + bottom) / 2
    lines = np.flatnonzero(line_like)
    line_of_band = lines[np.abs(middle[:, None] - middle[lines][None, :]).argmin(axis=1)]
    return np.searchsorted(lines, line_of_band[np.searchsorted(bands, roots)])


class TextDetector(DetectStage):
    name = "text"
    # Bump when the output bytes change (2: tiles; 3: the local-contrast pass; 4: a second look along
    # each line; 5: stacked lines refined apart; 6: glyphs the detector left out at a line's ends).
    version = "6"

    def __init__(self, settings: TextDetectConfig = TextDetectConfig(), device: str = "auto", threads: int = 0):
        """`device`: the config's setting ("auto", "cpu", "cuda"): onnxruntime runs on CUDA unless it is "cpu".
        `threads`: CPU threads per call (0 = onnxruntime's default, one per core)."""
        self.settings = settings
        self.session = onnx_session(bundled_model(DET_MODEL), device, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.reader = text_reader(device, threads) if self.settings.confirm else None

    @classmethod
    def from_config(cls, config) -> TextDetector:
        # One partition task, one thread (as torch): the partitions running at once fill the cores.
        return cls(config.detect.text, config.device, config.torch_threads)

    def reads_text(self, crop: np.ndarray, min_score: float | None = None) -> bool:
        """Whether the recogniser reads at least `min_chars` characters, with at least `min_score`
        confidence (default `min_text_score`), in `crop`."""
        min_score = self.settings.min_text_score if min_score is None else min_score
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        result = self.reader(np.ascontiguousarray(crop[..., ::-1]), use_det=False, use_cls=False, use_rec=True)
        return any(
            score >= min_score and sum(ch.isalnum() for ch in text) >= self.settings.min_chars
            for text, score in zip(result.txts or (), result.scores or ())
        )

    def scale_for(self, shape: tuple[int, ...]) -> float:
        """The scale a whole image of `shape` is detected at: its short side up to `min_side`, its
        long side down to `max_side`."""
        height, width = shape[:2]
        return min(max(1.0, self.settings.min_side / min(height, width)), self.settings.max_side / max(height, width))

    def probability(self, image: np.ndarray, factor: float = 1.0, scale: float | None = None) -> np.ndarray:
        """DB text probability, float32 in [0, 1], at the network's resolution (multiples of 32):
        the photo resized by `scale` (default `scale_for` its shape), times `factor`."""
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        height, width = rgb.shape[:2]
        scale = (self.scale_for(rgb.shape) if scale is None else scale) * factor
        size = (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))
        resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        # PP-OCR was trained on BGR (cv2.imread) scaled to [-1, 1].
        pixels = (resized[..., ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        return self.session.run(None, {self.input_name: np.ascontiguousarray(pixels)})[0][0, 0]

    def regions(self, image: np.ndarray, scale: float | None = None, contrast: bool = True) -> np.ndarray:
        """Text line regions (HxW bool) in the image's frame, before stroke refinement: those of
        every pass (`scales`; each whole or, past `tile`, tile by tile; and, with `contrast`, the same
        on `local_contrast(image)`) joined, grown by `margin`; on a whole frame (no `scale`), with the
        second look along each line they found (`look_along`). The contract's `regions`: the Measure
        step asks it whether text is still there after a removal, on a crop, at the `scale` the text
        needs (default: `scale_for` the image)."""
        if scale is None:
            return self.lines(image, contrast) > 0
        return self._detect(image, scale, contrast)[0]

    def lines(self, image: np.ndarray, contrast: bool = True) -> np.ndarray:
        """`regions` of a whole frame, one label per line (int32, 0 = no text): where two lines'
        regions touch (a phone number stacked under a banner), `split_lines` keeps them apart, so
        the stroke refinement sees each line's own ink."""
        mask, cores = self._detect(image, self.scale_for(image.shape), contrast)
        mask, cores = self.look_along(image, mask, cores)
        return split_lines(mask, cores)

    def _detect(self, image: np.ndarray, scale: float, contrast: bool) -> tuple[np.ndarray, np.ndarray]:
        """The regions of every pass at `scale` (bool), and the confirmed kernels they grew from (the
        lines' cores, bool), both in the image's frame."""
        height, width = image.shape[:2]
        mask = np.zeros((height, width), dtype=bool)
        cores = np.zeros((height, width), dtype=bool)
        sources = [(image, self.settings.min_text_score)]
        if contrast and self.settings.contrast_sigma > 0:
            sources.append((local_contrast(image, self.settings.contrast_sigma), self.settings.min_contrast_text_score))
        for source, min_score in sources:
            for factor in dict.fromkeys(self.settings.scales):
                for rows, cols in tiles(height, width, scale * factor, self.settings.tile, self.settings.tile_overlap):
                    tile = source[rows, cols]
                    grown, kernels = self._lines(tile, self.probability(tile, scale=scale * factor), min_score)
                    mask[rows, cols] |= grown
                    cores[rows, cols] |= kernels
        if mask.any() and self.settings.margin:
            side = 2 * self.settings.margin + 1
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
        return mask, cores & mask

    def _lines(self, image: np.ndarray, prob: np.ndarray, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The confirmed text lines of one probability map, grown (DB's unclip), and their kernels,
        both in the image's frame."""
        height, width = image.shape[:2]
        kernels = (prob > self.settings.threshold).astype(np.uint8)
        kernels = cv2.dilate(kernels, np.ones((2, 2), np.uint8))  # as DB's post-processing: join broken kernels
        count, labels, stats, _ = cv2.connectedComponentsWithStats(kernels, connectivity=8)
        grown = np.zeros_like(kernels)
        confirmed = np.zeros_like(kernels)
        for i in range(1, count):
            x, y, w, h, area = stats[i]
            if min(w, h) < 3:
                continue
            component = labels[y:y + h, x:x + w] == i
            if prob[y:y + h, x:x + w][component].mean() < self.settings.min_score:
                continue
            contours, _ = cv2.findContours(component.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            perimeter = max(sum(cv2.arcLength(c, True) for c in contours), 1.0)
            distance = int(np.ceil(area * self.settings.unclip / perimeter))
            # Grow the kernel by `distance` (DB's unclip, done on the pixel mask rather than a polygon).
            pad = distance + 1
            y0, y1, x0, x1 = max(0, y - pad), min(prob.shape[0], y + h + pad), max(0, x - pad), min(prob.shape[1], x + w + pad)
            window = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * distance + 1, 2 * distance + 1))
            region = cv2.dilate(window, disk)
            if self.reader is not None:
                sy, sx = height / prob.shape[0], width / prob.shape[1]
                ys, xs = np.nonzero(region)
                crop = image[int((y0 + ys.min()) * sy):int(np.ceil((y0 + ys.max() + 1) * sy)),
                             int((x0 + xs.min()) * sx):int(np.ceil((x0 + xs.max() + 1) * sx))]
                if crop.size == 0 or not self.reads_text(crop, min_score):
                    continue
            grown[y0:y1, x0:x1] |= region
            confirmed[y:y + h, x:x + w] |= component
        if not grown.any():
            none = np.zeros((height, width), dtype=bool)
            return none, none
        return (cv2.resize(grown, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool),
                cv2.resize(confirmed, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool))

    def look_along(self, image: np.ndarray, found: np.ndarray, cores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`found` (a frame's line regions) and their `cores`, with what a second look finds along
        each line: a crop of the line and `look_along` of its heights to either side, detected (photo
        pass) at the scale that brings the line's height to `look_height`, never below the frame's own
        scale nor above the crop's short side at `min_side`. At the frame's scale the detector may take
        only part of a string (the digits of a price, a word without its '©'); the recogniser still
        confirms every region the second look adds."""
        reach = self.settings.look_along
        if reach <= 0 or not found.any():
            return found, cores
        height, width = found.shape
        frame = self.scale_for(image.shape)
        out, out_cores = found.copy(), cores.copy()
        count, _, stats, _ = cv2.connectedComponentsWithStats(found.astype(np.uint8), connectivity=8)
        for i in range(1, count):
            x, y, w, h, _ = stats[i]
            side = round(reach * h)
            rows = slice(max(0, y - h // 2), min(height, y + h + h // 2))
            cols = slice(max(0, x - side), min(width, x + w + side))
            crop = image[rows, cols]
            scale = min(max(frame, self.settings.look_height / h), self.scale_for(crop.shape))
            mask, kernels = self._detect(crop, scale, contrast=False)
            out[rows, cols] |= mask
            out_cores[rows, cols] |= kernels
        return out, out_cores

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.refine(image, self.lines(image))

    def refine(self, image: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """The regions of `lines` (labels, as `lines` returns them) cut down to the letters' strokes,
        line by line (HxW bool); the regions themselves when `refine` is off."""
        regions = lines > 0
        if not self.settings.refine or not regions.any():
            return regions
        return continue_lines(image, refine_text_mask(image, regions, lines=lines), lines, gap=self.settings.glyph_gap)
