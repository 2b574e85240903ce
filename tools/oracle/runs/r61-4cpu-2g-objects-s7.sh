# One phase (85 s), five workers on four CPUs: two unmovable-object
# churners, small-file churn with many negative lookups on ext4 and tmpfs,
# and anonymous churn (THP on half the chunks) that over-commits RAM from
# about 20 s on, so slab shrinkers, page-cache reclaim and swap run while
# kernel objects keep being created.
phase objects-pressure
spawn unmovable --seed 7 --seconds 85 --target-mb 64 --max-pipes 3000 --max-socks 2000 --max-threads 256
spawn unmovable --seed 17 --seconds 85 --target-mb 48 --max-pipes 3000 --max-socks 2000 --max-regions 8
spawn filechurn --dir /mnt/disk/small --seed 27 --seconds 85 --target-mb 250 --max-file-kb 32 --dirs 512 --neg-per-op 32 --max-files 150000
spawn filechurn --dir /tmp/small --seed 37 --seconds 85 --target-mb 120 --max-file-kb 64 --dirs 256 --neg-per-op 16
sleep 10
spawn anonhog --seed 47 --seconds 75 --target-mb 900
waitall
phase release
rm -rf /tmp/small /mnt/disk/small
sync
