# Phase swap (75 s): anonymous churn of ~1 GB (70% without THP, many
#   long-lived chunks) on top of the 300 MB ballast in 1 GiB RAM: the
#   ballast and cold chunks go to swap, direct reclaim on the one CPU;
#   plus small ext4 file churn and unmovable objects.
# Phase reread (15 s): a second anonymous churner faults pages back
#   while the first is gone (swap-in).
phase swap
spawn anonhog --seed 6 --seconds 75 --target-mb 1000 --nohuge-frac 0.7 --longlived-frac 0.5
spawn filechurn --dir /mnt/disk/churn --seed 16 --seconds 75 --target-mb 120 --max-file-kb 512
spawn unmovable --seed 26 --seconds 75 --target-mb 32
waitall
phase reread
spawn anonhog --seed 36 --seconds 15 --target-mb 400 --nohuge-frac 0.5
waitall
phase release
rm -rf /mnt/disk/churn
sync
