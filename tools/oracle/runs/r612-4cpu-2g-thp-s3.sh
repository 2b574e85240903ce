# One phase (80 s), four workers for four CPUs:
#  - two anonymous churners with large chunks (2-64 MiB), THP allowed on
#    all / 90% of them, partial unmaps and hole punching split THPs;
#    together ~1.1 GB anonymous on top of the 0.7 GB page cache, so THP
#    faults meet low free memory (reclaim of page cache, compaction);
#  - ext4 file churn with files up to 4 MiB (page cache, dentries);
#  - a small unmovable-object churner.
phase thp-pagecache
spawn anonhog --seed 3 --seconds 80 --target-mb 600 --min-chunk-kb 2048 --max-chunk-kb 65536 --nohuge-frac 0 --partial-frac 0.3 --punch-frac 0.05
spawn anonhog --seed 13 --seconds 80 --target-mb 500 --min-chunk-kb 2048 --max-chunk-kb 32768 --nohuge-frac 0.1 --partial-frac 0.2 --punch-frac 0.1
spawn filechurn --dir /mnt/disk/churn --seed 23 --seconds 80 --target-mb 400 --max-file-kb 4096
spawn unmovable --seed 33 --seconds 80 --target-mb 24
waitall
phase release
rm -rf /mnt/disk/churn
sync
