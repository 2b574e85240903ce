"""GFP flags and the helpers that read them (include/linux/gfp_types.h, gfp.h).

Bit values are those of a recent x86_64 build, which are also the values the
6.12 oracle kernel prints in its tracefs ``format`` files.
"""

__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_ZEROTAGS = 0x800000

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE
GFP_TRANSHUGE_LIGHT = (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC
                       | __GFP_NOWARN) & ~__GFP_RECLAIM
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM

GFP_MOVABLE_SHIFT = 3

#: Names a user may write (CLI, scenarios, API); composites first, as
#: ``show_gfp_flags`` matches them (include/trace/events/mmflags.h).
GFP_NAMES = {
    "GFP_TRANSHUGE": GFP_TRANSHUGE,
    "GFP_TRANSHUGE_LIGHT": GFP_TRANSHUGE_LIGHT,
    "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE,
    "GFP_HIGHUSER": GFP_HIGHUSER,
    "GFP_USER": GFP_USER,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL_ACCOUNT,
    "GFP_KERNEL": GFP_KERNEL,
    "GFP_NOFS": GFP_NOFS,
    "GFP_ATOMIC": GFP_ATOMIC,
    "GFP_NOIO": GFP_NOIO,
    "GFP_NOWAIT": GFP_NOWAIT,
    "GFP_DMA": GFP_DMA,
    "__GFP_HIGHMEM": __GFP_HIGHMEM,
    "GFP_DMA32": GFP_DMA32,
    "__GFP_HIGH": __GFP_HIGH,
    "__GFP_IO": __GFP_IO,
    "__GFP_FS": __GFP_FS,
    "__GFP_NOWARN": __GFP_NOWARN,
    "__GFP_RETRY_MAYFAIL": __GFP_RETRY_MAYFAIL,
    "__GFP_NOFAIL": __GFP_NOFAIL,
    "__GFP_NORETRY": __GFP_NORETRY,
    "__GFP_COMP": __GFP_COMP,
    "__GFP_ZERO": __GFP_ZERO,
    "__GFP_NOMEMALLOC": __GFP_NOMEMALLOC,
    "__GFP_MEMALLOC": __GFP_MEMALLOC,
    "__GFP_HARDWALL": __GFP_HARDWALL,
    "__GFP_THISNODE": __GFP_THISNODE,
    "__GFP_RECLAIMABLE": __GFP_RECLAIMABLE,
    "__GFP_MOVABLE": __GFP_MOVABLE,
    "__GFP_ACCOUNT": __GFP_ACCOUNT,
    "__GFP_WRITE": __GFP_WRITE,
    "__GFP_RECLAIM": __GFP_RECLAIM,
    "__GFP_DIRECT_RECLAIM": __GFP_DIRECT_RECLAIM,
    "__GFP_KSWAPD_RECLAIM": __GFP_KSWAPD_RECLAIM,
    "__GFP_ZEROTAGS": __GFP_ZEROTAGS,
}


def gfp_migratetype(gfp: int) -> int:
    """``gfp_migratetype()``: 0 UNMOVABLE, 1 MOVABLE, 2 RECLAIMABLE."""
    return (gfp & (__GFP_RECLAIMABLE | __GFP_MOVABLE)) >> GFP_MOVABLE_SHIFT


def format_gfp(gfp: int) -> str:
    """Render a mask as ``show_gfp_flags`` does: composites first, '|'-joined, 'none' for 0."""
    if gfp == 0:
        return "none"
    parts = []
    rest = gfp
    for name, mask in GFP_NAMES.items():
        if mask and (rest & mask) == mask:
            parts.append(name)
            rest &= ~mask
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def parse_gfp(text: str) -> int:
    """Parse 'GFP_KERNEL|__GFP_COMP', a number ('0x400cc0') or 'none' into a mask.

    Raises ValueError naming the unknown flag.
    """
    text = text.strip()
    if text in ("", "none", "0"):
        return 0
    mask = 0
    for part in text.split("|"):
        part = part.strip()
        if part in GFP_NAMES:
            mask |= GFP_NAMES[part]
            continue
        try:
            mask |= int(part, 0)
        except ValueError:
            raise ValueError(f"unknown gfp flag {part!r}") from None
    return mask
