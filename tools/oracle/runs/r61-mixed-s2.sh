# Phase 1 (15 s): ext4 page cache + unmovable kernel objects.
# Phase 2 (70 s): memory pressure: anonymous churn (THP allowed on half of
#   the chunks) + tmpfs file churn + unmovable objects; RAM over-committed,
#   so kswapd, direct reclaim, swap and compaction run.
phase files-ext4
spawn filechurn --dir /mnt/disk/churn --seed 2 --seconds 15 --target-mb 400 --max-file-kb 2048
spawn unmovable --seed 2 --seconds 15 --target-mb 40
waitall
phase pressure
spawn anonhog --seed 2 --seconds 70 --target-mb 950
spawn filechurn --dir /tmp/churn --seed 12 --seconds 70 --target-mb 250 --max-file-kb 512
spawn unmovable --seed 12 --seconds 70 --target-mb 80
waitall
phase release
rm -rf /tmp/churn
sync
