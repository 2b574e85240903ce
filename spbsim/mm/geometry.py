"""Machine geometry: RAM ranges, zones, pageblocks and superpageblocks.

x86_64 layout: RAM below 4 GiB (``low_memory``, default min(memory, 3 GiB))
starts at pfn 0, the rest starts at 4 GiB (pfn 0x100000), leaving the PCI hole
between.  Zones: DMA below 16 MiB, DMA32 below 4 GiB, Normal above.  Holes are
pageblock-granular (absent pageblocks); reserved ranges are page-granular
(memblock-reserved pages that never reach the buddy allocator).
"""
import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from .const import (MAX_NR_ZONES, PAGE_SHIFT, SUPERPAGEBLOCK_ORDER,
                    ZONE_DMA, ZONE_DMA32, ZONE_NAMES, ZONE_NORMAL,
                    pageblock_nr_pages)

__all__ = ["parse_size", "format_size", "Geometry", "build_geometry",
           "MIN_MEMORY", "MAX_MEMORY"]

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
MIN_MEMORY = 1 * GiB
MAX_MEMORY = 4 * TiB
_UNITS = {"": 1, "B": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.I)
DMA_END_PFN = (16 * MiB) >> PAGE_SHIFT
DMA32_END_PFN = (4 * GiB) >> PAGE_SHIFT


def parse_size(text, what="size"):
    """Parse '4G', '256GiB', '1.5G', '512M' or a byte count into bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ConfigError(f"invalid {what} {text!r}: expected a number with a unit "
                          f"K, M, G or T (for example 4G or 256G)")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    return int(value)


def format_size(nbytes):
    for unit, size in (("T", TiB), ("G", GiB), ("M", MiB), ("K", KiB)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return f"{nbytes}B"


@dataclass(frozen=True)
class Geometry:
    """Where RAM, holes and reserved pages are, and the zone spans (pfns)."""
    memory: int
    low_memory: int
    nr_pfns: int                     # max_pfn: arrays cover [0, nr_pfns)
    ram: tuple                       # ((start_pfn, end_pfn), ...)
    holes: tuple                     # pageblock-aligned absent ranges inside ram
    reserved: tuple                  # ((start_pfn, end_pfn, name), ...)
    zone_start: tuple                # per zone, 0/0 if empty
    zone_end: tuple
    spb_base: tuple = field(default=())   # per zone: first SPB index
    spb_count: tuple = field(default=())  # per zone: number of SPBs

    def zone_names(self):
        return [ZONE_NAMES[z] for z in range(MAX_NR_ZONES) if self.zone_end[z] > self.zone_start[z]]


def _overlap(a0, a1, b0, b1):
    return max(a0, b0) < min(a1, b1)


def build_geometry(memory="4G", low_memory=None, kernel_image="48M",
                   memmap_bytes_per_page=64, firmware_reserved="1M",
                   holes=(), reserved=()):
    """Lay out a machine.

    ``holes``: extra absent ranges as (start, size) strings/bytes, pageblock
    aligned.  ``reserved``: extra reserved ranges (start, size).  The default
    reservations: firmware's first ``firmware_reserved`` bytes, the kernel
    image at 16 MiB, and the memmap (``memmap_bytes_per_page`` per page, the
    size of struct page) at the top of RAM, where memblock puts it.
    """
    mem = parse_size(memory, "memory size")
    if not MIN_MEMORY <= mem <= MAX_MEMORY:
        raise ConfigError(f"memory size {memory!r} out of range: allowed 1G to 4T")
    if mem % (2 * MiB):
        raise ConfigError(f"memory size {memory!r} must be a multiple of 2M (a pageblock)")
    low = min(mem, 3 * GiB) if low_memory is None else parse_size(low_memory, "low memory")
    if not 256 * MiB <= low <= min(mem, 4 * GiB):
        raise ConfigError(f"low memory {low_memory!r} out of range: allowed 256M to "
                          f"min(memory, 4G)")
    if low % (2 * MiB):
        raise ConfigError(f"low memory {low_memory!r} must be a multiple of 2M")
    low_pfns = low >> PAGE_SHIFT
    high_pfns = (mem - low) >> PAGE_SHIFT
    ram = [(0, low_pfns)]
    if high_pfns:
        ram.append((DMA32_END_PFN, DMA32_END_PFN + high_pfns))
    nr_pfns = ram[-1][1]

    zs = [0] * MAX_NR_ZONES
    ze = [0] * MAX_NR_ZONES
    zs[ZONE_DMA], ze[ZONE_DMA] = 0, min(DMA_END_PFN, low_pfns)
    zs[ZONE_DMA32], ze[ZONE_DMA32] = DMA_END_PFN, min(low_pfns, DMA32_END_PFN)
    if high_pfns:
        zs[ZONE_NORMAL], ze[ZONE_NORMAL] = DMA32_END_PFN, nr_pfns

    hole_list = [(low_pfns, DMA32_END_PFN)] if high_pfns else []
    for i, (start, size) in enumerate(holes):
        s = parse_size(start, f"hole {i} start") >> PAGE_SHIFT
        n = parse_size(size, f"hole {i} size") >> PAGE_SHIFT
        if s % pageblock_nr_pages or n % pageblock_nr_pages or n <= 0:
            raise ConfigError(f"hole {i} ({start}, {size}) must be pageblock (2M) aligned and non-empty")
        if s + n > nr_pfns:
            raise ConfigError(f"hole {i} ({start}, {size}) lies beyond the end of memory")
        hole_list.append((s, s + n))

    res = []
    fw = parse_size(firmware_reserved, "firmware_reserved") >> PAGE_SHIFT
    if fw:
        res.append((0, fw, "firmware"))
    kimg = parse_size(kernel_image, "kernel_image") >> PAGE_SHIFT
    if kimg:
        res.append((DMA_END_PFN, DMA_END_PFN + kimg, "kernel"))
    memmap = (mem // 4096 * int(memmap_bytes_per_page) + 4095) >> PAGE_SHIFT
    if memmap:
        res.append((nr_pfns - memmap, nr_pfns, "memmap"))
    for i, (start, size) in enumerate(reserved):
        s = parse_size(start, f"reserved {i} start") >> PAGE_SHIFT
        n = parse_size(size, f"reserved {i} size") >> PAGE_SHIFT
        if s + n > nr_pfns or n <= 0:
            raise ConfigError(f"reserved range {i} ({start}, {size}) is empty or beyond memory")
        res.append((s, s + n, f"reserved{i}"))
    for s, e, name in res:
        if not any(r0 <= s and e <= r1 for r0, r1 in ram):
            raise ConfigError(f"reserved range {name} [{s:#x}, {e:#x}) is not inside RAM")
    present = sum(e - s for s, e in ram) - sum(e - s for s, e in hole_list[1 if high_pfns else 0:])
    if present - sum(e - s for s, e, _ in res) < 64 * pageblock_nr_pages:
        raise ConfigError("impossible geometry: reservations and holes leave less than 128M of usable memory")

    spb_base, spb_count = [], []
    for z in range(MAX_NR_ZONES):
        if ze[z] > zs[z]:
            b = zs[z] >> SUPERPAGEBLOCK_ORDER
            e = (ze[z] + (1 << SUPERPAGEBLOCK_ORDER) - 1) >> SUPERPAGEBLOCK_ORDER
            spb_base.append(b)
            spb_count.append(e - b)
        else:
            spb_base.append(0)
            spb_count.append(0)
    return Geometry(memory=mem, low_memory=low, nr_pfns=nr_pfns, ram=tuple(ram),
                    holes=tuple(hole_list), reserved=tuple(res),
                    zone_start=tuple(zs), zone_end=tuple(ze),
                    spb_base=tuple(spb_base), spb_count=tuple(spb_count))
