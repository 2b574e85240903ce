# Untraced setup: ~500 MB clean ext4 page cache (big files + many small ones)
# and ~350 MB resident anonymous ballast, so the traced part starts with
# roughly 0.4 GB free and runs into reclaim and fallbacks.
mkdir -p /mnt/disk/cache
i=0
while [ $i -lt 8 ]; do
    dd if=/dev/zero of=/mnt/disk/cache/big$i bs=1M count=50 2>/dev/null
    i=$((i+1))
done
filechurn --dir /mnt/disk/cache/small --seed 201 --seconds 10 --target-mb 120 --max-file-kb 256
sync
background anonhog --seed 202 --hold 1 --target-mb 350 --max-chunk-kb 8192
while [ "$(awk '/^AnonPages/{print $2}' /proc/meminfo)" -lt 350000 ]; do sleep 0.5; done
grep -E "MemFree|^Cached|AnonPages" /proc/meminfo
