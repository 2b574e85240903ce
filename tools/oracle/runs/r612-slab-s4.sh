# Phase objects (45 s): three unmovable churners (pipes, AF_UNIX sockets
#   with queued skbs, threads, page tables), small-file churn on ext4 and
#   on tmpfs with many directories and negative lookups (dentry, inode,
#   ext4_inode slabs: reclaimable), a directory-tree builder in shell.
# Phase pressure (35 s): anonymous churn (no THP) pushes the slab and page
#   cache into reclaim (slab shrinkers, kswapd, direct reclaim).
phase objects
spawn unmovable --seed 4 --seconds 80 --target-mb 48 --max-pipes 3000 --max-socks 2000 --max-threads 256
spawn unmovable --seed 14 --seconds 80 --target-mb 32 --max-pipes 3000 --max-socks 2000 --max-threads 128 --max-regions 8
spawn filechurn --dir /mnt/disk/small --seed 24 --seconds 80 --target-mb 200 --max-file-kb 16 --dirs 512 --neg-per-op 32 --max-files 150000
spawn filechurn --dir /tmp/small --seed 34 --seconds 80 --target-mb 60 --max-file-kb 8 --dirs 256 --neg-per-op 16 --max-files 100000
mktree() { d=$1; n=0; while [ $n -lt 3000 ]; do mkdir -p $d/t$((n % 50))/u$n; n=$((n+1)); done; }
spawn mktree /mnt/disk/tree
sleep 45
phase pressure
spawn anonhog --seed 44 --seconds 35 --target-mb 550 --nohuge-frac 1 --max-chunk-kb 8192
waitall
phase release
rm -rf /tmp/small /mnt/disk/tree
sync
