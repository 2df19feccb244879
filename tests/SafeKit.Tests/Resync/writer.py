"""A live application for the online-resync test: appends numbered records to a file it keeps
open (fsync every 10), keeps writing into a file it unlinked, and creates, renames and removes
files in subdirectories, until the stop file appears. Prints how many records it wrote."""
import os
import sys
import time

root, stop = sys.argv[1], sys.argv[2]
log = os.open(os.path.join(root, "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
scratch_path = os.path.join(root, "scratch.bin")
scratch = os.open(scratch_path, os.O_RDWR | os.O_CREAT, 0o600)
os.unlink(scratch_path)
kept = os.open(os.path.join(root, "kept.bin"), os.O_RDWR | os.O_CREAT, 0o640)
i = 0
while not os.path.exists(stop):
    os.write(log, b"record %d\n" % i)
    os.pwrite(scratch, b"s" * 100, (i % 50) * 100)
    os.pwrite(kept, b"%08d" % i, (i % 1000) * 8)
    if i % 10 == 0:
        os.fsync(log)
    if i % 40 == 0:
        directory = os.path.join(root, "work", str(i // 400))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "f%d" % i)
        with open(path + ".tmp", "w") as f:
            f.write("x" * (i % 3000))
        os.rename(path + ".tmp", path)
        if i % 120 == 0 and i > 0:
            old = i - 40
            os.unlink(os.path.join(root, "work", str(old // 400), "f%d" % old))
    i += 1
    time.sleep(0.0005)
os.fsync(log)
os.close(log)
os.close(scratch)
os.close(kept)
print(i)
