# Untraced setup: ~600 MB clean ext4 page cache, ~400 MB anonymous ballast.
mkdir -p /mnt/disk/cache
i=0
while [ $i -lt 12 ]; do
    dd if=/dev/zero of=/mnt/disk/cache/big$i bs=1M count=50 2>/dev/null
    i=$((i+1))
done
sync
background anonhog --seed 707 --hold 1 --target-mb 400 --max-chunk-kb 8192
while [ "$(awk '/^AnonPages/{print $2}' /proc/meminfo)" -lt 400000 ]; do sleep 0.5; done
grep -E "MemFree|^Cached|AnonPages|Slab" /proc/meminfo
