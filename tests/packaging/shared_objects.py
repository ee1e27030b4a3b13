"""What the dynamic loader will ask of the system for a folder of installed wheels: the libraries their shared objects
link to that the folder does not carry itself, and the newest glibc symbol version they use.

Read from the ELF files directly (section headers, the .dynamic section and its string table), so the checks need no
binutils; x86_64 wheels are ELF64 little-endian.
"""

from __future__ import annotations

import re
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_ELF64_LITTLE_ENDIAN = b"\x7fELF\x02\x01"
_SHT_DYNAMIC = 6
_DT_NEEDED = 1
_DT_SONAME = 14
_GLIBC_SYMBOL_VERSION = re.compile(rb"GLIBC_2\.(\d+)")


@dataclass(frozen=True)
class SharedObject:
    path: Path
    soname: str | None
    needed: tuple[str, ...]
    newest_glibc_minor: int  # N of the highest GLIBC_2.N it names; 0 when none


def read_shared_object(path: Path) -> SharedObject | None:
    """None for a file that is not an ELF64 little-endian object (a stray `.so.txt`, say)."""
    data = path.read_bytes()
    if not data.startswith(_ELF64_LITTLE_ENDIAN):
        return None
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    # (name, type, flags, address, offset, size, link, info, alignment, entry size)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + index * entry_size) for index in range(count)]
    needed: list[str] = []
    soname = None
    for section in sections:
        if section[1] != _SHT_DYNAMIC:
            continue
        strings_offset = sections[section[6]][4]

        def string(offset: int, strings_offset: int = strings_offset) -> str:
            start = strings_offset + offset
            return data[start : data.index(b"\0", start)].decode()

        for index in range(section[5] // 16):
            tag, value = struct.unpack_from("<qQ", data, section[4] + index * 16)
            if tag == _DT_NEEDED:
                needed.append(string(value))
            elif tag == _DT_SONAME:
                soname = string(value)
    minors = [int(minor) for minor in _GLIBC_SYMBOL_VERSION.findall(data)]
    return SharedObject(path, soname, tuple(needed), max(minors, default=0))


def shared_objects(folder: Path) -> list[SharedObject]:
    found = (read_shared_object(path) for path in sorted(folder.rglob("*.so*")) if path.is_file())
    return [shared_object for shared_object in found if shared_object is not None]


def libraries_from_the_system(objects: list[SharedObject]) -> dict[str, list[Path]]:
    """Needed library -> the objects needing it, for every library none of the objects themselves provide."""
    carried = {name for shared_object in objects for name in (shared_object.path.name, shared_object.soname) if name}
    needing: dict[str, list[Path]] = defaultdict(list)
    for shared_object in objects:
        for library in shared_object.needed:
            if library not in carried:
                needing[library].append(shared_object.path)
    return dict(needing)


# glibc's own libraries: on every Linux the wheels' manylinux tags admit.
GLIBC_LIBRARIES = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libdl.so.2",
        "libm.so.6",
        "libpthread.so.0",
        "libresolv.so.2",
        "librt.so.1",
        "libutil.so.1",
    }
)
