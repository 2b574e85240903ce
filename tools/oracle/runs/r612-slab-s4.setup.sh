# Untraced setup: ~400 MB clean ext4 page cache, ~250 MB anonymous ballast.
mkdir -p /mnt/disk/cache
i=0
while [ $i -lt 8 ]; do
    dd if=/dev/zero of=/mnt/disk/cache/big$i bs=1M count=50 2>/dev/null
    i=$((i+1))
done
sync
background anonhog --seed 404 --hold 1 --target-mb 250 --max-chunk-kb 4096 --nohuge-frac 1
while [ "$(awk '/^AnonPages/{print $2}' /proc/meminfo)" -lt 250000 ]; do sleep 0.5; done
grep -E "MemFree|^Cached|AnonPages|Slab" /proc/meminfo
