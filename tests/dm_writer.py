"""Write minimal Gatan DigitalMicrograph DM3 / DM4 files for tests.

ncempy and rosettasciio read DM files but cannot write them, so the reader
tests build their fixtures with this helper. It writes what Gatan's
DigitalMicrograph writes for a single image, and nothing more:

* a big-endian header: version (3 or 4), root length, byte-order flag 1
  (tag *values* little-endian, as written on a PC);
* the root tag group with an ``ImageList`` whose entries are unlabelled tag
  groups, each holding::

      ImageData
          Calibrations
              Brightness            Origin, Scale, Units
              Dimension             one unlabelled group per axis, x first:
                                    Origin (f4), Scale (f4), Units (u2 chars)
              DisplayCalibratedUnits (bool)
          Data                      array of the pixel values, x fastest
          DataType                  Gatan image data type (10 = uint16, 2 = float32, ...)
          Dimensions                one unlabelled ulong per axis, x first
          PixelDepth                bytes per pixel
      ImageTags                     (empty group)
      Name                          u2 chars

* optionally, as real files from DigitalMicrograph do, a small RGBA thumbnail
  (``DataType`` 23) as the *first* ``ImageList`` entry, with the root group
  ``Thumbnails`` -> ``ImageIndex = 0`` pointing at it;
* eight NUL bytes closing the file.

Tag groups are written sorted by label, as Gatan does.

Layout (after Chris Boothroyd's "Digital Micrograph file format" notes and
Greg Jefferis' DM3 format page, cross-checked against the ncempy
``ncempy/io/dm.py`` and rosettasciio ``digitalmicrograph`` readers):

DM3, all structural integers big-endian, 4 bytes:

    header      i4 version=3, i4 root length (file length - 16), i4 byte order=1
    tag group   i1 sorted, i1 open, i4 number of entries, entries
    entry       i1 20 (group) or 21 (data), i2 label length, label bytes, then
                a tag group (20) or
                "%%%%", i4 n, n x i4 type info, value bytes (21)
    type info   simple value:   [type]
                array:          [20, element type, length]

DM4 is the same with 8-byte integers for the root length, number of entries,
``n`` and the type info, and one extra 8-byte big-endian length after every
entry's label (the number of bytes in that entry's group or data that follow).

Number types used: 3 long, 4 ushort (also UTF-16 characters), 5 ulong,
6 float, 7 double, 8 bool, 2 short, 10 octet. Neither ncempy nor rosettasciio
checks the header's root-length field; it is written as Boothroyd documents it
for DM3 (file length - 16) and the analogous file length - 24 for DM4.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["write_dm"]

# DM tag number types
_SHORT, _LONG, _USHORT, _ULONG, _FLOAT, _DOUBLE, _BOOL, _OCTET = 2, 3, 4, 5, 6, 7, 8, 10
_ARRAY = 20
_GROUP_ENTRY, _DATA_ENTRY = 20, 21

# numpy dtype -> (Gatan image DataType, tag number type of the Data array elements)
_IMAGE_TYPES = {
    np.dtype(np.int16): (1, _SHORT),
    np.dtype(np.float32): (2, _FLOAT),
    np.dtype(np.uint8): (6, _OCTET),
    np.dtype(np.int32): (7, _LONG),
    np.dtype(np.uint16): (10, _USHORT),
    np.dtype(np.uint32): (11, _ULONG),
    np.dtype(np.float64): (12, _DOUBLE),
}
_RGBA_THUMBNAIL = 23
_SCALAR_FORMATS = {_SHORT: "<h", _LONG: "<i", _USHORT: "<H", _ULONG: "<I",
                   _FLOAT: "<f", _DOUBLE: "<d", _BOOL: "<B", _OCTET: "<B"}
_ELEMENT_DTYPES = {_SHORT: "<i2", _LONG: "<i4", _USHORT: "<u2", _ULONG: "<u4",
                   _FLOAT: "<f4", _DOUBLE: "<f8", _OCTET: "<u1"}


class _Scalar:
    def __init__(self, ntype: int, value):
        self.ntype, self.value = ntype, value


class _Array:
    def __init__(self, ntype: int, values):
        self.ntype = ntype
        self.values = np.ascontiguousarray(values, dtype=_ELEMENT_DTYPES[ntype])


def _text(s: str) -> _Array:
    """A DM string as Gatan stores labels like Units and Name: an array of UTF-16 code units."""
    return _Array(_USHORT, np.frombuffer(s.encode("utf-16-le"), dtype="<u2"))


class _Writer:
    def __init__(self, version: int):
        if version not in (3, 4):
            raise ValueError(f"DM version must be 3 or 4, got {version}")
        self.version = version
        self.int_fmt = ">I" if version == 3 else ">Q"

    def _int(self, v: int) -> bytes:
        return struct.pack(self.int_fmt, int(v))

    def group_body(self, entries: list) -> bytes:
        """``entries``: list of (label, value); value is a list (sub-group), _Scalar or _Array."""
        out = [b"\x01\x00", self._int(len(entries))]  # sorted, closed, number of entries
        for label, value in entries:
            out.append(self.entry(label, value))
        return b"".join(out)

    def entry(self, label: str, value) -> bytes:
        name = label.encode("latin-1")
        if isinstance(value, list):
            kind, body = _GROUP_ENTRY, self.group_body(value)
        else:
            kind, body = _DATA_ENTRY, self.data_body(value)
        head = struct.pack(">BH", kind, len(name)) + name
        if self.version == 4:
            head += struct.pack(">Q", len(body))  # bytes of this entry that follow
        return head + body

    def data_body(self, value) -> bytes:
        if isinstance(value, _Scalar):
            info = [value.ntype]
            payload = struct.pack(_SCALAR_FORMATS[value.ntype], value.value)
        else:
            info = [_ARRAY, value.ntype, value.values.size]
            payload = value.values.tobytes()
        return b"%%%%" + self._int(len(info)) + b"".join(self._int(i) for i in info) + payload

    def file_bytes(self, root: list) -> bytes:
        body = self.group_body(root)
        tail = b"\x00" * 8
        if self.version == 3:
            total = 12 + len(body) + len(tail)
            header = struct.pack(">III", 3, total - 16, 1)
        else:
            total = 16 + len(body) + len(tail)
            header = struct.pack(">IQI", 4, total - 24, 1)
        return header + body + tail


def _per_axis(value, ndim: int, name: str) -> list:
    """A value given once or per numpy axis (..., y, x) -> list in DM order (x, y, ...)."""
    if isinstance(value, (str, int, float, np.floating, np.integer)):
        return [value] * ndim
    values = list(value)
    if len(values) != ndim:
        raise ValueError(f"{name}: need {ndim} values (one per axis), got {len(values)}")
    return values[::-1]


def _image_group(data: np.ndarray, scales, units, origins, name: str, data_type: int,
                 element_type: int, pixel_depth: int) -> list:
    dims = list(data.shape[::-1])  # x first
    dimension = [("", [("Origin", _Scalar(_FLOAT, o)), ("Scale", _Scalar(_FLOAT, s)), ("Units", _text(u))])
                 for s, u, o in zip(scales, units, origins)]
    return [
        ("ImageData", [
            ("Calibrations", [
                ("Brightness", [("Origin", _Scalar(_FLOAT, 0.0)), ("Scale", _Scalar(_FLOAT, 1.0)),
                                ("Units", _text(""))]),
                ("Dimension", dimension),
                ("DisplayCalibratedUnits", _Scalar(_BOOL, 1)),
            ]),
            ("Data", _Array(element_type, data.reshape(-1))),
            ("DataType", _Scalar(_LONG, data_type)),
            ("Dimensions", [("", _Scalar(_ULONG, d)) for d in dims]),
            ("PixelDepth", _Scalar(_ULONG, pixel_depth)),
        ]),
        ("ImageTags", []),
        ("Name", _text(name)),
    ]


def write_dm(path, data, scale=1.0, units="nm", *, version: int = 3, origin=0.0,
             thumbnail: bool = True, name: str = "exoimage test", n_images: int = 1) -> Path:
    """Write ``data`` (2-D or 3-D array) as a Gatan DM3 (``version=3``) or DM4 file.

    Parameters
    ----------
    path : str or Path
        Output file.
    data : ndarray
        uint16, float32 (or int16, uint8, int32, uint32, float64) array, numpy
        order (rows = y); a 3-D array is written as a (z, y, x) stack.
    scale, units, origin : scalar/str or sequence
        Calibration of each axis, given once for all axes or per numpy axis
        (``(y, x)`` for an image), written to
        ``ImageData.Calibrations.Dimension[i].Scale/Units/Origin`` with x first.
    version : 3 or 4
    thumbnail : bool
        Put a 2-D RGBA thumbnail (``DataType`` 23) first in ``ImageList`` and
        record it in ``Thumbnails``, as DigitalMicrograph does.
    n_images : int
        Write the image this many times as separate ``ImageList`` entries
        (a multi-image file, for testing that readers reject it).
    """
    data = np.asarray(data)
    if data.dtype.newbyteorder("=") not in _IMAGE_TYPES:
        raise ValueError(f"unsupported dtype {data.dtype}")
    if data.ndim not in (1, 2, 3):
        raise ValueError("data must be 1-, 2- or 3-D")
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    data_type, element_type = _IMAGE_TYPES[data.dtype.newbyteorder("=")]
    ndim = data.ndim
    scales = [float(s) for s in _per_axis(scale, ndim, "scale")]
    unit_list = [str(u) for u in _per_axis(units, ndim, "units")]
    origins = [float(o) for o in _per_axis(origin, ndim, "origin")]

    images = []
    root_extra = []
    if thumbnail:
        # a small RGBA preview: 4 bytes per pixel, stored as one ulong per pixel
        rgba = np.full((8, 8), 0xFF808080, dtype="<u4")
        images.append(("", _image_group(rgba, [1.0, 1.0], ["", ""], [0.0, 0.0], "thumbnail",
                                        _RGBA_THUMBNAIL, _ULONG, 4)))
        root_extra.append(("Thumbnails", [("", [("ImageIndex", _Scalar(_ULONG, 0))])]))
    for _ in range(n_images):
        images.append(("", _image_group(data, scales, unit_list, origins, name, data_type,
                                        element_type, data.dtype.itemsize)))
    root = sorted([("ImageList", images)] + root_extra, key=lambda e: e[0])

    path = Path(path)
    path.write_bytes(_Writer(version).file_bytes(root))
    return path
