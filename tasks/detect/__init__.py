"""Detect: find what a row names in its `detect` list, without a hand-drawn mask.

A detector is a stage of kind "detect" with the one contract of `tasks/stages.py`: a `name` and a
`version`, `from_config(config)` that builds it from its own section (`detect.text`,
`detect.faces`) and loads its model (once per worker, by `tasks.registry.get_stage`),
`__call__(image) -> mask`, `regions(image) -> mask` (where it fires before any refinement) and
`lines(image) -> labels` (the regions, one int32 label per line or object, 0 = none):

- `image`: HxWx3 (RGB) or HxW (grey) uint8, upright, full resolution;
- returns an HxW bool mask in the image's frame, True = found.

`text` returns the strokes of the text it finds (a hole as small as the letters), and its line
regions as `regions` (the Measure step's check that no text is left); `faces` returns boxes, for
the privacy blur. License plates are not offered: no package this project installs ships a plate
model (opencv-python-headless 5.x ships no cascade files at all).
"""
