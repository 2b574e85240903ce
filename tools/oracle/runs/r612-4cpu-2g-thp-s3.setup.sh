# Untraced setup: ~700 MB of clean ext4 page cache, no anonymous ballast.
mkdir -p /mnt/disk/cache
i=0
while [ $i -lt 14 ]; do
    dd if=/dev/zero of=/mnt/disk/cache/big$i bs=1M count=50 2>/dev/null
    i=$((i+1))
done
sync
grep -E "MemFree|^Cached|AnonPages" /proc/meminfo
