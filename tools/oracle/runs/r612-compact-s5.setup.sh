# Untraced setup: ~450 MB clean ext4 page cache (big and small files) and
# ~200 MB anonymous ballast without THP.
mkdir -p /mnt/disk/cache
i=0
while [ $i -lt 6 ]; do
    dd if=/dev/zero of=/mnt/disk/cache/big$i bs=1M count=50 2>/dev/null
    i=$((i+1))
done
filechurn --dir /mnt/disk/cache/small --seed 501 --seconds 10 --target-mb 150 --max-file-kb 64
sync
background anonhog --seed 502 --hold 1 --target-mb 200 --max-chunk-kb 2048 --nohuge-frac 1
while [ "$(awk '/^AnonPages/{print $2}' /proc/meminfo)" -lt 200000 ]; do sleep 0.5; done
grep -E "MemFree|^Cached|AnonPages" /proc/meminfo
