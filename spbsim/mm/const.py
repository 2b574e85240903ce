"""Compile-time constants shared by the machine model (include/linux/mmzone.h,
mm/internal.h, include/linux/pageblock-flags.h).

Module-level integers are constants to numba, so these cost nothing on the
hot path.  x86_64, 4 KiB pages.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
PAGE_ALLOC_COSTLY_ORDER = 3
pageblock_order = 9
pageblock_nr_pages = 1 << pageblock_order
HPAGE_PMD_ORDER = 9
#: superpageblock = PUD size = 1 GiB (SUPERPAGEBLOCK_ORDER in the SPB series)
SUPERPAGEBLOCK_ORDER = 18
SUPERPAGEBLOCK_NR_PAGES = 1 << SUPERPAGEBLOCK_ORDER
SUPERPAGEBLOCK_NR_PAGEBLOCKS = 1 << (SUPERPAGEBLOCK_ORDER - pageblock_order)

# enum migratetype, CONFIG_CMA=n (as on the 6.12 oracle kernel): ISOLATE is 4.
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_ISOLATE = 4
MIGRATE_TYPES = 5
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

# enum zone_type (x86_64 without ZONE_MOVABLE/ZONE_DEVICE populated)
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
MAX_NR_ZONES = 3
ZONE_NAMES = ("DMA", "DMA32", "Normal")

# alloc_flags (mm/internal.h)
ALLOC_WMARK_MIN = 0
ALLOC_WMARK_LOW = 1
ALLOC_WMARK_HIGH = 2
ALLOC_WMARK_MASK = 3
ALLOC_NO_WATERMARKS = 0x04
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800
# SPB series: per-allocation flags carrying gfp-derived decisions into __rmqueue
ALLOC_NOFRAG_TAINTED_OK = 0x1000   # v2: PASS_2/2B may relabel MOVABLE blocks in tainted SPBs [S]
ALLOC_SPB_CHEAP = 0x2000           # caller has a cheap fallback (v1 29 / v2 26) [S; flag I]
ALLOC_SPB_ATOMIC = 0x4000          # cannot direct-reclaim: the relax sequence applies [S2]
ALLOC_SPB_BEST_EFFORT = 0x8000     # v2 35/40 best-effort high-order shape [S]
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

# enum rmqueue_mode (recent kernels)
RMQUEUE_NORMAL = 0
RMQUEUE_CMA = 1
RMQUEUE_CLAIM = 2
RMQUEUE_STEAL = 3

# per-page flag bits (pg_flags), our compact stand-in for struct page flags
PG_buddy = 0x01      # head of a free buddy block (PageBuddy)
PG_head = 0x02       # head of an allocated block handed to a user
PG_pcp = 0x04        # head of a block parked on a per-cpu list
PG_reserved = 0x08   # memblock-reserved, never in the buddy allocator
PG_lru = 0x10        # allocated and movable (PageLRU / movable_ops)
PG_pinned = 0x20     # allocated movable page that cannot migrate (pinned)
PG_MT_SHIFT = 6      # bits 6-7: gfp migratetype of the allocation
PG_pcpbuddy = 0x40   # PagePCPBuddy (PCPBuddy): a PG_pcp block that may merge on its
#                      owner's list; shares bit 6 with PG_MT (read only under PG_head)
PG_MT_MASK = 0xC0

# pageblock content bits (pb_flags), as in the SPB series' pageblock_data
PB_all_free = 0x01
PB_has_unmovable = 0x02
PB_has_reclaimable = 0x04
PB_has_movable = 0x08
PB_has_mask = PB_has_unmovable | PB_has_reclaimable | PB_has_movable
PB_compact_skip = 0x10

# per-cpu lists: stock NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1) + 2
# (orders 0..3, then the THP lists); PCPBuddy has one list per type for every order
# 0..pageblock_order (order_to_pindex = 3 * order + mt).  The arrays hold the larger
# count; stock leaves lists 14..29 empty.
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_STOCK_PCP_LISTS = NR_LOWORDER_PCP_LISTS + 2
NR_PCP_LISTS = MIGRATE_PCPTYPES * (pageblock_order + 1)
CONFIG_PCP_BATCH_SCALE_MAX = 5

# zone flags
ZONE_BOOSTED_WATERMARK = 0x1
ZONE_RECLAIM_ACTIVE = 0x2
ZONE_BELOW_HIGH = 0x4

# kernel versions modelled (cfg[CFG_VERSION])
KV_RECENT = 0   # v6.19 / 7.0-rc: __rmqueue_claim/__rmqueue_steal, nr_free_highatomic
KV_6_12 = 1     # v6.12 LTS as Debian ships it (6.12.117): the same fallback and
#                 watermark rules as recent (backported), v6.12's free_high threshold
KV_6_1 = 2      # v6.1 LTS: __rmqueue_fallback + steal_suitable_fallback,
#                 nr_reserved_highatomic in the watermark
KERNEL_VERSIONS = {"recent": KV_RECENT, "6.19": KV_RECENT, "7.0": KV_RECENT,
                   "6.12": KV_6_12, "6.1": KV_6_1}

# PCPBuddy variants (machine cfg "pcpbuddy"; 0: off): which rmqueue_bulk() phases run
PCPBUDDY_S1 = 1       # phases 0, 1, 3: the SPB series' S1 snapshot (phase 2 removed there)
PCPBUDDY_RFC = 2      # phases 0-3, phase 2 from the zone's lists: Johannes' RFC (v1 02)
PCPBUDDY_ADOPT = 3    # phases 0-3, phase 2 adopts partly free pageblocks of tainted SPBs
                      #   for UNMOV/RECL refills (v2 21/40)

#: a time (ns) that never comes: MAX_SCHEDULE_TIMEOUT, no further recorded wake
NEVER_NS = 1 << 62
