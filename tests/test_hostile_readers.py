"""Hostile and absurd input files for every reader (built here, at test time).

A small file can declare a huge image; each reader must refuse it from its
header, before decoding, with a one-line ImageReadError naming the budget, and
memory must stay bounded. The bombs are read in a child process under an
address-space limit (so a regression fails the test instead of taking the
machine down) and its peak RSS is compared with its RSS after imports.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from exoimage.io import (DEFAULT_MAX_PIXELS, MAX_BYTES_PER_SAMPLE, PEAK_BYTES_PER_PIXEL, Image, ImageHeader,
                         ImageReadError, probe_image, read_image)

ROOT = Path(__file__).resolve().parents[1]
HUGE = 40000  # px per side declared by the bombs: 1600 Mpx, 6x the default budget
#: address-space limit of the child that reads the bombs (imports take ~1 GB of it)
CHILD_AS_LIMIT = 3 * 1024 ** 3
#: growth of the child's peak RSS over its RSS after imports allowed for reading every bomb
#: (each file is a few kB; one decoded bomb would be >= 290 MB)
BOMB_RSS_GROWTH_MB = 120

RNG = np.random.default_rng(3)
SMALL = RNG.integers(200, 3000, size=(32, 48), dtype=np.uint16)


# --------------------------------------------------------------------------
# builders


def _tiff_entries(buf):
    """(code, type, count, value position) of the first IFD of a little-endian classic TIFF."""
    assert bytes(buf[:4]) == b"II*\x00"
    off = struct.unpack_from("<I", buf, 4)[0]
    for i in range(struct.unpack_from("<H", buf, off)[0]):
        e = off + 2 + 12 * i
        code, typ, count = struct.unpack_from("<HHI", buf, e)
        yield code, typ, count, e + 8


def _patch_tiff_tags(path: Path, values: dict) -> Path:
    buf = bytearray(path.read_bytes())
    done = set()
    for code, typ, count, pos in _tiff_entries(buf):
        if code in values:
            assert count == 1 and typ in (3, 4)
            struct.pack_into("<H" if typ == 3 else "<I", buf, pos, values[code])
            done.add(code)
    assert done == set(values), f"tags not found: {set(values) - done}"
    path.write_bytes(bytes(buf))
    return path


def _tiff_declaring(path: Path, width: int, height: int, arr=SMALL, **kw) -> Path:
    tifffile.imwrite(path, arr, **kw)
    return _patch_tiff_tags(path, {256: width, 257: height})


def _deflate_bomb_tiff(path: Path, side: int) -> Path:
    """A real, valid Deflate TIFF of side x side uint8 zeros in one strip (~0.1 % of its decoded size)."""
    z = zlib.compressobj(9)
    row_block = bytes(side * 1024)
    chunks = [z.compress(row_block) for _ in range(side // 1024)]
    chunks.append(z.compress(bytes(side * (side % 1024))))
    chunks.append(z.flush())
    strip = b"".join(chunks)
    tags = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0),
            (277, 3, 1), (278, 4, side), (279, 4, len(strip))]
    ifd_off = 8
    data_off = ifd_off + 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_off) + struct.pack("<H", len(tags)))
    for code, typ, value in tags:
        if code == 273:
            value = data_off
        out += struct.pack("<HHI", code, typ, 1) + struct.pack("<I" if typ == 4 else "<HH", *(
            (value,) if typ == 4 else (value, 0)))
    out += struct.pack("<I", 0) + strip
    path.write_bytes(bytes(out))
    return path


def _png_declaring(path: Path, width: int, height: int, arr=None) -> Path:
    import cv2

    buf = bytearray(cv2.imencode(".png", (SMALL // 16).astype(np.uint8) if arr is None else arr)[1].tobytes())
    assert buf[12:16] == b"IHDR"
    struct.pack_into(">II", buf, 16, width, height)
    struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(buf))
    return path


def _bmp_declaring(path: Path, width: int, height: int) -> Path:
    import cv2

    buf = bytearray(cv2.imencode(".bmp", (SMALL // 16).astype(np.uint8))[1].tobytes())
    struct.pack_into("<ii", buf, 18, width, height)
    path.write_bytes(bytes(buf))
    return path


def _jpeg_sof_patch(buf: bytearray, width: int, height: int, start: int = 0) -> None:
    i = buf.index(b"\xff\xc0", start)
    struct.pack_into(">HH", buf, i + 5, height, width)


def _jpeg_declaring(path: Path, width: int, height: int) -> Path:
    import cv2

    buf = bytearray(cv2.imencode(".jpg", (SMALL // 16).astype(np.uint8))[1].tobytes())
    _jpeg_sof_patch(buf, width, height)
    path.write_bytes(bytes(buf))
    return path


def _mrc(path: Path, data) -> Path:
    mrcfile = pytest.importorskip("mrcfile")
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = 12.0
    return path


def _mrc_declaring(path: Path, nx: int, ny: int) -> Path:
    _mrc(path, SMALL.astype(np.float32))
    buf = bytearray(path.read_bytes())
    struct.pack_into("<ii", buf, 0, nx, ny)  # mrcfile writes little-endian
    path.write_bytes(bytes(buf))
    return path


def _dm(path: Path, data, version: int) -> Path:
    pytest.importorskip("ncempy")
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from dm_writer import write_dm
    finally:
        sys.path.pop(0)
    return write_dm(path, data, scale=0.5, units="nm", version=version)


def _dm_declaring(path: Path, x: int, y: int, version: int) -> Path:
    _dm(path, SMALL, version)
    buf = bytearray(path.read_bytes())
    at = buf.rindex(b"Dimensions")  # the image's (the thumbnail's comes first)
    isz = 4 if version == 3 else 8
    for value in (x, y):
        at = buf.index(b"%%%%", at) + 4
        struct.pack_into("<I", buf, at + 2 * isz, value)  # after n and the type (ulong)
    path.write_bytes(bytes(buf))
    return path


_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaaaaaaaa">'
           + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 16}">' for i in range(7))
           + ']><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
           '<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="48" SizeY="32" SizeC="1" '
           'SizeZ="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeXUnit="nm"><Channel ID="Channel:0:0"/>'
           '<TiffData/></Pixels></Image><!-- &h; --></OME>')


def _ome_entities(path: Path) -> Path:
    tifffile.imwrite(path, SMALL, description=_LAUGHS, metadata=None)
    return path


def _ome_huge_declared(path: Path) -> Path:
    """OME-XML declaring 10^12 planes of 40000^2 px over one small real page."""
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="{HUGE}" '
           f'SizeY="{HUGE}" SizeC="1000000" SizeZ="1000000" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeXUnit="nm">'
           '<Channel ID="Channel:0:0"/><TiffData IFD="0" PlaneCount="1000000000000"/></Pixels></Image></OME>')
    tifffile.imwrite(path, SMALL, description=xml, metadata=None)
    return path


def _tiled_bomb(path: Path) -> Path:
    tifffile.imwrite(path, SMALL, tile=(16, 16))
    return _patch_tiff_tags(path, {322: 32768, 323: 32768})  # TileWidth, TileLength


def _jpeg_in_tiff_bomb(path: Path) -> Path:
    tifffile.imwrite(path, (SMALL // 16).astype(np.uint8), compression="jpeg")
    buf = bytearray(path.read_bytes())
    _jpeg_sof_patch(buf, HUGE, HUGE, start=8)
    path.write_bytes(bytes(buf))
    return path


def _ifd_loop(path: Path) -> Path:
    tifffile.imwrite(path, np.stack([SMALL, SMALL, SMALL]), photometric="minisblack", metadata=None)
    buf = bytearray(path.read_bytes())
    first = struct.unpack_from("<I", buf, 4)[0]
    off, offs = first, []
    while off:
        offs.append(off)
        n = struct.unpack_from("<H", buf, off)[0]
        nxt_pos = off + 2 + 12 * n
        off = struct.unpack_from("<I", buf, nxt_pos)[0]
    struct.pack_into("<I", buf, nxt_pos, offs[1])  # last page points back to the second
    path.write_bytes(bytes(buf))
    return path


#: name -> (builder(tmp_path) -> path, text the refusal must contain)
BOMBS = {
    "tiff_striped": (lambda d: _tiff_declaring(d / "striped.tif", HUGE, HUGE), "over the pixel budget"),
    "tiff_deflate": (lambda d: _tiff_declaring(d / "deflate.tif", HUGE, HUGE, compression="zlib"),
                     "over the pixel budget"),
    # 144 Mpx, within the budget as grey, but x 3 samples is over it
    "tiff_lzw_rgb": (lambda d: _tiff_declaring(d / "rgb.tif", 12000, 12000, compression="lzw",
                                               arr=np.dstack([SMALL] * 3), photometric="rgb"),
                     "12000x12000 px x 3 samples (432 Mpx), over the pixel budget"),
    "tiff_real_deflate_17000": (lambda d: _deflate_bomb_tiff(d / "real_bomb.tif", 17000), "over the pixel budget"),
    "tiff_tiles": (lambda d: _tiled_bomb(d / "tiled.tif"), "tiles"),
    "tiff_jpeg_segment": (lambda d: _jpeg_in_tiff_bomb(d / "jpeg_in.tif"), "JPEG data inside the TIFF declares"),
    "tiff_ifd_loop": (lambda d: _ifd_loop(d / "loop.tif"), "loops"),
    "ome_entities": (lambda d: _ome_entities(d / "laughs.ome.tif"), "DOCTYPE/ENTITY"),
    "png": (lambda d: _png_declaring(d / "bomb.png", HUGE, HUGE), "over the pixel budget"),
    "png_under_cv2_limit": (lambda d: _png_declaring(d / "bomb2.png", 30000, 30000), "over the pixel budget"),
    "bmp": (lambda d: _bmp_declaring(d / "bomb.bmp", HUGE, HUGE), "over the pixel budget"),
    "jpeg": (lambda d: _jpeg_declaring(d / "bomb.jpg", HUGE, HUGE), "over the pixel budget"),
    "mrc": (lambda d: _mrc_declaring(d / "bomb.mrc", HUGE, HUGE), "over the pixel budget"),
    "dm3": (lambda d: _dm_declaring(d / "bomb.dm3", HUGE, HUGE, 3), "over the pixel budget"),
    "dm4": (lambda d: _dm_declaring(d / "bomb.dm4", HUGE, HUGE, 4), "over the pixel budget"),
}

_CHILD = r"""
import json, os, resource, sys
import numpy as np
from exoimage.io import read_image, probe_image, ImageReadError
import cv2, tifffile, mrcfile, ncempy.io.dm  # imports counted in the baseline
def rss_mb():  # VmHWM: peak RSS of this process (ru_maxrss would include the forking parent's)
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
out = {"base_mb": rss_mb(), "cases": {}}
for name, path, fn in json.loads(sys.argv[1]):
    try:
        r = (read_image if fn == "read" else probe_image)(path)
        res = "ok " + str(getattr(r, "shape", None) or (r.height, r.width))
    except ImageReadError as exc:
        res = str(exc)
    except BaseException as exc:
        res = "UNEXPECTED " + type(exc).__name__ + ": " + str(exc)[:200]
    out["cases"][name] = [res, rss_mb()]
print(json.dumps(out))
"""


def _run_child(code: str, *args) -> dict:
    import resource

    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_AS_LIMIT, CHILD_AS_LIMIT))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          preexec_fn=limit, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    jobs, paths = [], {}
    for name, (build, _) in BOMBS.items():
        try:
            p = build(d)
        except pytest.skip.Exception:
            continue
        assert p.stat().st_size < 2_000_000, (name, p.stat().st_size)  # small files
        paths[name] = p
        jobs += [[name, str(p), "read"], [name + "#probe", str(p), "probe"]]
    return _run_child(_CHILD, json.dumps(jobs)), paths


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_refused_from_header(bomb_results, name):
    results, paths = bomb_results
    if name not in paths:
        pytest.skip("reader library not installed")
    want = BOMBS[name][1]
    for key in (name, name + "#probe"):
        msg, _ = results["cases"][key]
        assert want in msg, (key, msg)
        assert msg.startswith(str(paths[name]) + ": ") and msg.count(str(paths[name])) == 1
        assert "\n" not in msg
    if want == "over the pixel budget":
        assert f"max_pixels = {DEFAULT_MAX_PIXELS}" in results["cases"][name][0]


def test_bombs_read_with_bounded_memory(bomb_results):
    results, _ = bomb_results
    peak = max(rss for _, rss in results["cases"].values())
    assert peak - results["base_mb"] < BOMB_RSS_GROWTH_MB, results


def test_bomb_message_names_sizes(tmp_path):
    p = _png_declaring(tmp_path / "b.png", HUGE, HUGE)
    with pytest.raises(ImageReadError) as ei:
        read_image(p)
    assert str(ei.value) == (f"{p}: image is 40000x40000 px (1600 Mpx), over the pixel budget of 268 Mpx "
                             f"(max_pixels = 268435456; raise max_pixels if the machine has the memory)")
    # a larger budget lets the header through (the file itself is then found truncated)
    with pytest.raises(ImageReadError) as ei:
        read_image(p, max_pixels=2 * HUGE * HUGE)
    assert "budget" not in str(ei.value)


def test_ome_xml_with_huge_declared_sizes_reads_the_real_page(tmp_path):
    """OME-XML is never turned into page lists: only the one real page counts."""
    p = _ome_huge_declared(tmp_path / "ome.tif")
    img = read_image(p)
    np.testing.assert_array_equal(img.data, SMALL)
    assert img.pixel_size_source == "ome" and img.pixel_size_nm == pytest.approx(0.5)


@pytest.mark.parametrize("desc,frames", [
    ('{"shape": [1000000000000, 32, 48]}', 10 ** 12),  # tifffile "shaped": a stack, refused
    ("ImageJ=1.11a\nimages=1000000000\nslices=1000000000\n", 1),  # more than the file holds: ignored
])
def test_series_metadata_declaring_huge_stacks(tmp_path, desc, frames):
    """Declared stack sizes never become allocations: only the real page is counted or read."""
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, SMALL, description=desc, metadata=None)
    assert probe_image(p).n_frames == frames
    if frames > 1:
        with pytest.raises(ImageReadError, match="multi-frame"):
            read_image(p)
    else:
        np.testing.assert_array_equal(read_image(p).data, SMALL)


def test_too_many_pages_is_a_stack(tmp_path):
    p = tmp_path / "many.tif"
    tifffile.imwrite(p, np.zeros((70, 4, 4), np.uint8), photometric="minisblack", metadata=None)
    with pytest.raises(ImageReadError, match="multi-frame TIFF .more than 64 pages"):
        read_image(p)


@pytest.mark.parametrize("code", ["jpeg2000", "webp", "png"])
def test_image_codec_inside_tiff_refused(tmp_path, code):
    from tifffile import TIFF

    comp = {"jpeg2000": 34712, "webp": 50001, "png": 34933}[code]
    assert comp in TIFF.IMAGE_COMPRESSIONS
    p = tmp_path / f"{code}.tif"
    tifffile.imwrite(p, SMALL)
    _patch_tiff_tags(p, {259: comp})
    with pytest.raises(ImageReadError, match=r"TIFF compression .* is not supported"):
        read_image(p)


# --------------------------------------------------------------------------
# exact budget boundary, per format, and probe_image against the decoded image


def _formats(tmp_path):
    """name -> (path, probe values expected (h, w, samples, itemsize, dtype))."""
    import cv2

    g8 = (SMALL // 16).astype(np.uint8)
    out = {}
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, SMALL)
    out["tiff"] = (p, (32, 48, 1, 2, "uint16"))
    p = tmp_path / "tiled.tif"
    tifffile.imwrite(p, SMALL, tile=(16, 16), compression="zlib")
    out["tiff_tiled"] = (p, (32, 48, 1, 2, "uint16"))
    p = tmp_path / "f64.tif"
    tifffile.imwrite(p, SMALL.astype(np.float64))
    out["tiff_float64"] = (p, (32, 48, 1, 8, "float64"))
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, np.dstack([g8, g8, 255 - g8]), photometric="rgb")
    out["tiff_rgb"] = (p, (32, 48, 3, 1, "uint8"))
    p = tmp_path / "jpeg.tif"
    tifffile.imwrite(p, g8, compression="jpeg")  # JPEG segments checked, then decoded
    out["tiff_jpeg"] = (p, (32, 48, 1, 1, "uint8"))
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), SMALL)
    out["png16"] = (p, (32, 48, 1, 2, "uint16"))
    p = tmp_path / "rgba.png"
    cv2.imwrite(str(p), np.dstack([g8, g8, 255 - g8, g8]))
    out["png_rgba"] = (p, (32, 48, 4, 1, "uint8"))
    p = tmp_path / "a.jpg"
    cv2.imwrite(str(p), np.dstack([g8, g8, 255 - g8]))
    out["jpeg_rgb"] = (p, (32, 48, 3, 1, "uint8"))
    p = tmp_path / "a.bmp"
    cv2.imwrite(str(p), g8)
    out["bmp_grey"] = (p, (32, 48, 1, 1, "uint8"))
    p = tmp_path / "c.bmp"
    cv2.imwrite(str(p), np.dstack([g8, g8, 255 - g8]))
    out["bmp_rgb"] = (p, (32, 48, 3, 1, "uint8"))
    try:
        out["mrc"] = (_mrc(tmp_path / "a.mrc", SMALL.astype(np.float32)), (32, 48, 1, 4, "float32"))
    except pytest.skip.Exception:
        pass
    try:
        out["dm3"] = (_dm(tmp_path / "a.dm3", SMALL, 3), (32, 48, 1, 2, "uint16"))
        out["dm4"] = (_dm(tmp_path / "a.dm4", SMALL.astype(np.float32), 4), (32, 48, 1, 4, "float32"))
    except pytest.skip.Exception:
        pass
    return out


def test_probe_matches_the_decoded_image(tmp_path):
    for name, (p, (h, w, samples, itemsize, dtype)) in _formats(tmp_path).items():
        hdr = probe_image(p)
        assert isinstance(hdr, ImageHeader)
        assert (hdr.height, hdr.width, hdr.samples, hdr.itemsize, hdr.dtype, hdr.n_frames) == \
            (h, w, samples, itemsize, dtype, 1), name
        assert hdr.n_pixels == h * w * samples and hdr.nbytes == h * w * samples * itemsize
        img = read_image(p)
        assert img.data.shape == (h, w) and img.data.dtype == np.dtype(dtype), name
        assert img.was_rgb == (samples >= 3), name


def test_probe_counts_frames(tmp_path):
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.stack([SMALL] * 3), photometric="minisblack")
    assert probe_image(p).n_frames == 3
    with pytest.raises(ImageReadError, match="multi-frame"):
        read_image(p)


def test_exact_pixel_budget_boundary(tmp_path):
    for name, (p, (h, w, samples, itemsize, dtype)) in _formats(tmp_path).items():
        n = h * w * samples
        at = n if itemsize <= MAX_BYTES_PER_SAMPLE else -(-n * itemsize // MAX_BYTES_PER_SAMPLE)
        assert read_image(p, max_pixels=at).data.shape == (h, w), name
        assert probe_image(p, max_pixels=at).n_pixels == n
        with pytest.raises(ImageReadError, match="budget") as ei:
            read_image(p, max_pixels=at - 1)
        assert "\n" not in str(ei.value) and str(ei.value).count(str(p)) == 1
        with pytest.raises(ImageReadError, match="budget"):
            probe_image(p, max_pixels=at - 1)


def test_byte_budget_refuses_64_bit_samples(tmp_path):
    p = tmp_path / "f64.tif"
    tifffile.imwrite(p, SMALL.astype(np.float64))
    n = SMALL.size
    assert read_image(p, max_pixels=2 * n).data.dtype == np.float64
    with pytest.raises(ImageReadError, match=r"of 64-bit samples .* over the memory budget .*max_pixels x 4"):
        read_image(p, max_pixels=2 * n - 1)
    p32 = tmp_path / "f32.tif"
    tifffile.imwrite(p32, SMALL.astype(np.float32))
    assert read_image(p32, max_pixels=n).data.dtype == np.float32
    # the default budget's byte rule: a 16384^2 x 4-sample float64 image is refused (by both rules)
    big = ImageHeader(16384, 16384, 4, 8)
    assert big.n_pixels > DEFAULT_MAX_PIXELS and big.nbytes > DEFAULT_MAX_PIXELS * MAX_BYTES_PER_SAMPLE
    grey64 = ImageHeader(16384, 16384, 1, 8)
    assert grey64.n_pixels == DEFAULT_MAX_PIXELS and grey64.nbytes > DEFAULT_MAX_PIXELS * MAX_BYTES_PER_SAMPLE


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True, float("nan")])
def test_max_pixels_must_be_positive_whole(tmp_path, bad):
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, SMALL)
    with pytest.raises(ValueError, match="max_pixels must be a positive whole number"):
        read_image(p, max_pixels=bad)


def test_max_pixels_reaches_the_pipelines(tmp_path):
    from exoimage.blot import analyze_blot_file
    from exoimage.tem import analyze_tem_file

    p = tmp_path / "a.tif"
    tifffile.imwrite(p, SMALL)
    t = analyze_tem_file(p, pixel_size_nm=1.0, max_pixels=100)
    assert t.image_row["status"] == "error" and "over the pixel budget" in t.image_row["error"]
    b = analyze_blot_file(p, max_pixels=100)
    assert not b.ok and "over the pixel budget of 100 px" in b.image_row["error"]


def test_cli_max_pixels(tmp_path, capsys):
    import pandas as pd

    from exoimage.cli import main

    p = tmp_path / "in" / "a.tif"
    p.parent.mkdir()
    tifffile.imwrite(p, SMALL)
    assert main(["tem", str(p.parent), "--out", str(tmp_path / "o"), "--pixel-size", "1",
                 "--max-pixels", "1000"]) == 1
    err = pd.read_csv(tmp_path / "o" / "images.csv")["error"].iloc[0]
    assert "over the pixel budget of 1000 px" in err
    assert main(["blot", str(p.parent), "--out", str(tmp_path / "b"), "--max-pixels", "1000"]) == 1
    assert "over the pixel budget of 1000 px" in pd.read_csv(tmp_path / "b" / "images.csv")["error"].iloc[0]
    with pytest.raises(SystemExit):
        main(["tem", str(p.parent), "--out", str(tmp_path / "o"), "--max-pixels", "-3"])
    assert "--max-pixels: must be a positive whole number" in capsys.readouterr().err
    from exoimage.scalebar import ocr_available

    if ocr_available():
        assert main(["calibrate", str(p), "--out", str(tmp_path / "c"), "--max-pixels", "1000"]) == 1
        assert "over the pixel budget of 1000 px" in pd.read_csv(tmp_path / "c" / "calibration.csv")["error"].iloc[0]


def test_cli_run_max_pixels_overrides_experiment(tmp_path):
    import pandas as pd

    from exoimage.cli import main

    root = tmp_path / "exp"
    (root / "tem" / "S1").mkdir(parents=True)
    tifffile.imwrite(root / "tem" / "S1" / "a.tif", SMALL)
    (root / "experiment.toml").write_text("[experiment]\nmax_pixels = 100000\n")
    main(["run", str(root), "--out", str(tmp_path / "o"), "--workers", "0", "--no-progress",
          "--max-pixels", "1000"])
    err = pd.read_csv(tmp_path / "o" / "images.csv")["error"].iloc[0]
    assert "over the pixel budget of 1000 px" in err


def test_experiment_max_pixels(tmp_path):
    from exoimage.experiment import ExperimentError, load_experiment

    root = tmp_path / "exp"
    (root / "tem" / "S1").mkdir(parents=True)
    tifffile.imwrite(root / "tem" / "S1" / "a.tif", SMALL)
    assert load_experiment(root).max_pixels is None
    (root / "experiment.toml").write_text("[experiment]\nmax_pixels = 1000\n")
    assert load_experiment(root).max_pixels == 1000
    for bad in ("0", "-1", "1.5e9", '"big"', "true"):
        (root / "experiment.toml").write_text(f"[experiment]\nmax_pixels = {bad}\n")
        with pytest.raises(ExperimentError) as ei:
            load_experiment(root)
        msg = str(ei.value)
        assert "experiment.toml" in msg and "max_pixels" in msg and "\n" not in msg


def test_batch_job_carries_max_pixels(tmp_path):
    from exoimage.experiment.batch import run_tasks
    from exoimage.experiment import load_experiment

    root = tmp_path / "exp"
    (root / "tem" / "S1").mkdir(parents=True)
    tifffile.imwrite(root / "tem" / "S1" / "a.tif", SMALL)
    (root / "experiment.toml").write_text("[experiment]\nmax_pixels = 1000\n")
    exp = load_experiment(root)
    results, _ = run_tasks(exp, tmp_path / "out", workers=0)
    assert "over the pixel budget of 1000 px" in results[0].image_row["error"]
    exp.max_pixels = None  # a larger budget is a different task: not the cached refusal
    results, _ = run_tasks(exp, tmp_path / "out", workers=0)
    assert "budget" not in str(results[0].image_row.get("error"))


# --------------------------------------------------------------------------
# complex, signed 8-bit, absurd pixel sizes, error text


def test_complex_tiff_refused(tmp_path):
    p = tmp_path / "c.tif"
    tifffile.imwrite(p, SMALL.astype(np.complex64) * (1 + 1j))
    with pytest.raises(ImageReadError, match=r"complex-valued image \(complex64\) is not supported"):
        read_image(p)
    assert probe_image(p).dtype == "complex64"  # the header is fine, decoding is what is refused


def test_complex_mrc_refused(tmp_path):
    p = _mrc(tmp_path / "c.mrc", SMALL.astype(np.complex64))
    with pytest.raises(ImageReadError, match="complex-valued"):
        read_image(p)


def test_int8_blot_explained(tmp_path):
    from exoimage.blot import analyze_blot_file
    from exoimage.simulate.blot import simulate_blot

    sim = simulate_blot(height=300, n_lanes=5, seed=1, bit_depth=8)
    p = tmp_path / "s8.tif"
    tifffile.imwrite(p, (sim.data.astype(np.int16) - 128).astype(np.int8))
    res = analyze_blot_file(p)
    assert not res.ok
    err = res.image_row["error"]
    assert "signed 8-bit image (int8): not a raw detector image" in err
    assert err.count(str(p)) == 1 and "\n" not in err and "list" not in err


@pytest.mark.parametrize("value", [1e300, 1e-30, 1e8, 5e-5])
def test_absurd_pixel_size_refused(tmp_path, value):
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, SMALL)
    with pytest.raises(ImageReadError, match="outside the plausible range 0.0001 to 1e[+]07 nm/px") as ei:
        read_image(p, pixel_size_nm=value)
    assert "max_denominator" not in str(ei.value)
    with pytest.raises(ImageReadError, match="plausible range"):
        Image.from_array(SMALL, value)
    from exoimage.tem import analyze_tem_file

    row = analyze_tem_file(p, pixel_size_nm=value).image_row
    assert row["status"] == "error" and "plausible range" in row["error"]


@pytest.mark.parametrize("value", [1e-4, 0.8, 5000.0, 1e7])  # 5 um/px: low-magnification SEM
def test_plausible_pixel_sizes_kept(tmp_path, value):
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, SMALL)
    assert read_image(p, pixel_size_nm=value).pixel_size_nm == value
    assert Image.from_array(SMALL, value).pixel_size_nm == value


def test_absurd_file_pixel_size_ignored_with_warning(tmp_path):
    p = _mrc(tmp_path / "a.mrc", SMALL.astype(np.float32))
    import mrcfile

    with mrcfile.open(p, mode="r+") as m:
        m.voxel_size = 1e35  # Angstrom
    img = read_image(p)
    assert img.pixel_size_nm is None and any("implausible" in w for w in img.warnings)


def test_error_text_is_one_line_with_the_path_once(tmp_path):
    p = tmp_path / "sub dir" / "x.tif"
    err = ImageReadError(p, f"reader said:\n  cannot open {p}\r\n\tat offset 12")
    assert str(err) == f"{p}: reader said: cannot open x.tif at offset 12"
    assert err.problem == "reader said: cannot open x.tif at offset 12"
    long = ImageReadError(p, "x" * 5000)
    assert len(long.problem) <= 400 and "\n" not in str(long)
    odd = tmp_path / "new\nline.tif"
    assert "\n" not in str(ImageReadError(odd, "problem")) and str(odd) == ImageReadError(odd, "p").path


@pytest.mark.parametrize("suffix,content", [
    (".dm3", b"not a gatan file at all" * 10),
    (".mrc", b"\0" * 1100),
    (".png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
    (".jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\0" * 20),
    (".bmp", b"BM" + b"\0" * 60),
    (".tif", b"II*\x00\x08\x00\x00\x00" + b"\xff" * 30),
])
def test_garbage_files_one_line(tmp_path, suffix, content):
    p = tmp_path / "deep" / "folder" / f"g{suffix}"
    p.parent.mkdir(parents=True)
    p.write_bytes(content)
    for fn in (read_image, probe_image):
        with pytest.raises(ImageReadError) as ei:
            fn(p)
        msg = str(ei.value)
        assert msg.startswith(f"{p}: ") and msg.count(str(p)) == 1 and "\n" not in msg, msg


def test_fifo_refused_without_hanging(tmp_path):
    p = tmp_path / "pipe.tif"
    os.mkfifo(p)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(p)


# --------------------------------------------------------------------------
# blot histogram check: bounded memory on 32-bit images, unchanged on 8/16-bit

_BLOT_CHILD = r"""
import json, sys
import numpy as np
from exoimage.blot import analyze_blot_file
def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
base = rss_mb()
out = {}
for path in sys.argv[1:]:
    r = analyze_blot_file(path)
    out[path] = [bool(r.ok), str(r.image_row.get("error")), r.image_row.get("n_bands")]
print(json.dumps({"base_mb": base, "peak_mb": rss_mb(),
                  "res": out}))
"""


def test_uint32_blot_histogram_bounded(tmp_path):
    from exoimage.simulate.blot import simulate_blot

    sim = simulate_blot(height=400, n_lanes=6, seed=2)
    scaled = tmp_path / "u32.tif"
    tifffile.imwrite(scaled, np.round(sim.data.astype(np.float64) / 65535 * 2e9).astype(np.uint32))
    rand = tmp_path / "rand.tif"
    tifffile.imwrite(rand, RNG.integers(0, 2 ** 32, size=(300, 300), dtype=np.uint32))
    out = _run_child(_BLOT_CHILD, str(scaled), str(rand))
    ok, err, n_bands = out["res"][str(scaled)]
    assert ok and n_bands > 0, err
    _, err_rand, _ = out["res"][str(rand)]
    assert "MemoryError" not in err_rand and "analysis failed" not in err_rand
    assert out["peak_mb"] - out["base_mb"] < 150, out  # measured 58 MB; the 2e9-bin histogram: 312 MB


def test_histogram_gap_warning_unchanged_on_16_and_8_bit():
    from exoimage.blot.signal import image_warnings

    smooth = RNG.normal(3000, 400, size=(400, 400)).clip(0, 65535).astype(np.uint16)
    stretched = (smooth // 3 * 3).astype(np.uint16)  # every third value only
    assert not any("gaps" in w for w in image_warnings(smooth))
    assert any("histogram has gaps (67%" in w for w in image_warnings(stretched))
    s8 = RNG.normal(100, 20, size=(300, 300)).clip(0, 255).astype(np.uint8)
    assert not any("gaps" in w for w in image_warnings(s8))
    assert any("gaps" in w for w in image_warnings((s8 // 2 * 2).astype(np.uint8)))


_PEAK_CHILD = r"""
import json, sys
import cv2
from exoimage import scalebar
from exoimage.blot import analyze_blot_file
from exoimage.tem import analyze_tem_file
cv2.setNumThreads(1)
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) * 1024
base = rss()
if sys.argv[1] == "tem":
    assert analyze_tem_file(sys.argv[2], pixel_size_nm=1.0).ok
else:
    assert analyze_blot_file(sys.argv[2]).ok
print(json.dumps({"growth": rss() - base}))
"""


def test_peak_memory_within_documented_multiple(tmp_path):
    """Read + analyse a 2048^2 uint16 image: peak RSS growth <= PEAK_BYTES_PER_PIXEL x pixels."""
    from exoimage.simulate.blot import scenario
    from exoimage.simulate.tem import SCENARIOS, TemScene, simulate_tem

    side = 2048
    tem, _ = simulate_tem(TemScene(shape=(side, side), pixel_size_nm=1.0, **SCENARIOS["mixed"]), seed=1)
    tifffile.imwrite(tmp_path / "tem.tif", tem)
    tifffile.imwrite(tmp_path / "blot.tif", scenario("clean", seed=1, height=side, width=side, n_lanes=8).data)
    for kind in ("tem", "blot"):
        growth = _run_child(_PEAK_CHILD, kind, str(tmp_path / f"{kind}.tif"))["growth"]
        # the image alone is 8 MB: a growth below 16 B/px would mean the measurement is broken
        assert 16 * side * side < growth <= PEAK_BYTES_PER_PIXEL[kind] * side * side, (kind, growth / side ** 2)
