"""Pageblock content bits shared by the buddy core and the SPB layer."""
from .const import (MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE,
                    MIGRATE_UNMOVABLE, PB_has_movable, PB_has_reclaimable,
                    PB_has_unmovable)
from .jit import njit_inline

__all__ = ["migratetype_to_has_bit", "fallback_type"]


@njit_inline
def migratetype_to_has_bit(mt):
    """migratetype_to_has_bit() of the SPB series: HIGHATOMIC counts as unmovable."""
    if mt == MIGRATE_UNMOVABLE or mt == MIGRATE_HIGHATOMIC:
        return PB_has_unmovable
    if mt == MIGRATE_RECLAIMABLE:
        return PB_has_reclaimable
    if mt == MIGRATE_MOVABLE:
        return PB_has_movable
    return 0


@njit_inline
def fallback_type(start_mt, i):
    """fallbacks[][]: UNMOVABLE->RECL,MOV; MOVABLE->RECL,UNMOV; RECL->UNMOV,MOV."""
    if start_mt == MIGRATE_UNMOVABLE:
        return MIGRATE_RECLAIMABLE if i == 0 else MIGRATE_MOVABLE
    if start_mt == MIGRATE_MOVABLE:
        return MIGRATE_RECLAIMABLE if i == 0 else MIGRATE_UNMOVABLE
    return MIGRATE_UNMOVABLE if i == 0 else MIGRATE_MOVABLE
