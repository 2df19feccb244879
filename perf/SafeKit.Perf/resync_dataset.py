"""Dataset and change for sk-bench mirror-resync (100 files per directory, 50 directories per group).
  make ROOT FILES MIB SEED [BIG]
                              FILES files, about MIB MiB in all; BIG of them (default 0.04%) 1-43 MiB
                              holding about 40% of the bytes, the others 4-24 KiB (smaller when
                              FILES is large for MIB: dataset (b), a million small files, BIG 0)
  change ROOT PERCENT SEED DATA  overwrites PERCENT% of the bytes, spread over PERCENT% of the files
                              (chosen by listing DATA, the real files behind ROOT: a walk through
                              the mount would make the daemon hold a descriptor for every file)
Prints the bytes written (make) or changed (change)."""
import os
import random
import sys

command, root = sys.argv[1], sys.argv[2]
if command == "make":
    files, mib, seed = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rng = random.Random(seed)
    big = int(sys.argv[6]) if len(sys.argv) > 6 else max(1, files // 2500)
    small_total = mib * 1024 * 1024 * (6 if big else 10) // 10
    average = small_total // max(1, files - big)
    low = min(4096, average // 2)
    written = 0
    for i in range(files):
        directory = os.path.join(root, "d%03d" % (i // 5000), "e%02d" % (i // 100 % 50))
        os.makedirs(directory, exist_ok=True)
        if i < big:
            size = rng.randint(1, 43) * 1024 * 1024
        else:
            size = rng.randint(low, max(low, 2 * average - low))
        with open(os.path.join(directory, "f%06d.bin" % i), "wb") as f:
            f.write(os.urandom(size))
        written += size
        if i % 5000 == 4999:
            # The kernel keeps every inode it met until memory runs short, and the pass-through
            # daemon a descriptor for each: let it forget them (a sandbox may cap descriptors).
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2")
    print(written)
else:
    percent, seed, data = float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rng = random.Random(seed)
    real = sorted(os.path.join(d, f) for d, _, names in os.walk(data) for f in names)
    sizes = {os.path.join(root, os.path.relpath(p, data)): os.path.getsize(p) for p in real}
    paths = sorted(sizes)
    total = sum(sizes.values())
    chosen = rng.sample(paths, max(1, int(len(paths) * percent / 100)))
    budget = int(total * percent / 100)
    per_file = max(1, budget // len(chosen))
    changed = 0
    for path in chosen:
        size = sizes[path]
        span = min(size, per_file)
        offset = rng.randint(0, size - span)
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(os.urandom(span))
        changed += span
    print(changed)
