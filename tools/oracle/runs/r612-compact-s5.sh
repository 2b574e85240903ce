# Phase fragment (25 s): small anonymous chunks with heavy order-0 hole
#   punching, small-file churn on ext4 and tmpfs, unmovable objects.
# Phase drop-compact: drop_caches=3 (page cache + slab), compact_memory.
# Phase thp (25 s): anonymous churn with THP on every chunk (large chunks)
#   + tmpfs churn; compact_memory again half-way.
# Phase drop1-compact: drop_caches=1, compact_memory, then 10 s more THP.
compact() { phase "compact_memory $1"; echo 1 > /proc/sys/vm/compact_memory; phase "compact_memory $1 done"; }
phase fragment
spawn anonhog --seed 5 --seconds 25 --target-mb 450 --max-chunk-kb 512 --nohuge-frac 1 --punch-frac 0.5 --partial-frac 0.3 --longlived-frac 0.5
spawn filechurn --dir /mnt/disk/frag --seed 15 --seconds 25 --target-mb 200 --max-file-kb 32
spawn filechurn --dir /tmp/frag --seed 25 --seconds 25 --target-mb 80 --max-file-kb 64
spawn unmovable --seed 35 --seconds 25 --target-mb 40
waitall
phase "drop_caches 3"
sync
echo 3 > /proc/sys/vm/drop_caches
compact 1
phase thp
spawn anonhog --seed 45 --seconds 25 --target-mb 700 --min-chunk-kb 2048 --max-chunk-kb 32768 --nohuge-frac 0 --longlived-frac 0.3
spawn filechurn --dir /tmp/churn --seed 55 --seconds 25 --target-mb 150 --max-file-kb 1024
sleep 12
compact 2
waitall
phase "drop_caches 1"
echo 1 > /proc/sys/vm/drop_caches
compact 3
phase thp2
spawn anonhog --seed 65 --seconds 10 --target-mb 500 --min-chunk-kb 2048 --max-chunk-kb 16384 --nohuge-frac 0
waitall
phase release
rm -rf /tmp/frag /tmp/churn
sync
