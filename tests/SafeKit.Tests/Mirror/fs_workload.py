# The file operations real applications do, run in a directory given as argv[1]; prints one line
# per step (its result or the errno's name), then a dump of the tree (types, modes, owners, sizes,
# link targets, contents' digests, xattrs, ACLs). Run on a plain directory and on the mount, the
# two outputs must be identical. Used by PassthroughMountTests.
import ctypes, errno, fcntl, hashlib, mmap, os, stat, subprocess, sys

root = sys.argv[1]
os.chdir(root)
libc = ctypes.CDLL("libc.so.6", use_errno=True)
out = []


def step(name, fn):
    try:
        result = fn()
        out.append(f"{name}: ok {result if result is not None else ''}".rstrip())
    except OSError as e:
        out.append(f"{name}: {errno.errorcode.get(e.errno, e.errno)}")


def renameat2(a, b, flags):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def write_new(path, data, flags=0):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | flags, 0o644)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def append_offset():
    # O_APPEND: the kernel's offset is ignored, data goes to the end, as on a local disk.
    fd = os.open("log.txt", os.O_WRONLY | os.O_APPEND)
    try:
        os.pwrite(fd, b"second line\n", 0)
        os.write(fd, b"third line\n")
    finally:
        os.close(fd)
    return open("log.txt", "rb").read()


def direct_io():
    fd = os.open("direct.bin", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    try:
        buf = mmap.mmap(-1, 8192)
        buf.write(b"D" * 8192)
        n = os.writev(fd, [buf])
        back = mmap.mmap(-1, 8192)
        os.lseek(fd, 0, os.SEEK_SET)
        m = os.readv(fd, [back])
        return f"{n} {m} {back[:4]}"
    finally:
        os.close(fd)


def shared_mmap():
    with open("mapped.bin", "wb") as f:
        f.write(b"\0" * 16384)
    fd = os.open("mapped.bin", os.O_RDWR)
    try:
        m = mmap.mmap(fd, 16384, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[100:105] = b"hello"
        m[9000:9003] = b"abc"
        m.flush()
        m.close()
    finally:
        os.close(fd)
    return open("mapped.bin", "rb").read()[100:105]


def locks():
    fd = os.open("log.txt", os.O_RDWR)
    fd2 = os.open("log.txt", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            second = "acquired"
        except OSError as e:
            second = errno.errorcode[e.errno]
        fcntl.flock(fd, fcntl.LOCK_UN)
        fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
        fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
        return second
    finally:
        os.close(fd)
        os.close(fd2)


def copy_range():
    src = os.open("big.bin", os.O_RDONLY)
    dst = os.open("copy.bin", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        return os.copy_file_range(src, dst, 70000, 1000, 0)
    finally:
        os.close(src)
        os.close(dst)


def fsyncs():
    fd = os.open("log.txt", os.O_RDWR)
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    d = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(d)
    os.close(d)
    fd = os.open("sync.txt", os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
    os.write(fd, b"durable")
    os.close(fd)


DUMP_ONLY = len(sys.argv) > 2 and sys.argv[2] == "dump"


def workload():
    pass


def as_nobody(fn):
    # In a child that dropped to uid/gid 65534: no CAP_FSETID, as an application's user.
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            fn()
            os._exit(0)
        except OSError as e:
            os._exit(100 + e.errno)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def privileged(name, mode, owner=65534):
    write_new(name, b"privileged program\n")
    os.chown(name, owner, owner)
    os.chmod(name, mode)


def privileges_cleared():
    # What a write, truncate, O_TRUNC open, fallocate or copy_file_range by a user without
    # CAP_FSETID, and a chown by root, leave of set-user-ID and set-group-ID.
    for name in ["p-write", "p-truncate", "p-otrunc", "p-fallocate", "p-copy", "p-chown"]:
        privileged(name, 0o6775)
    privileged("p-sgid-no-group-exec", 0o2764)
    results = [
        as_nobody(lambda: os.pwrite(os.open("p-write", os.O_WRONLY), b"patched", 0)),
        as_nobody(lambda: os.truncate("p-truncate", 4)),
        as_nobody(lambda: os.close(os.open("p-otrunc", os.O_WRONLY | os.O_TRUNC))),
        as_nobody(lambda: os.posix_fallocate(os.open("p-fallocate", os.O_WRONLY), 0, 1 << 16)),
        as_nobody(lambda: os.copy_file_range(os.open("p-write", os.O_RDONLY), os.open("p-copy", os.O_WRONLY), 7)),
        as_nobody(lambda: os.write(os.open("p-sgid-no-group-exec", os.O_WRONLY), b"x")),
    ]
    os.chown("p-chown", 1234, 1234)
    return results + [oct(os.stat(n).st_mode) for n in sorted(os.listdir(".")) if n.startswith("p-")]


if not DUMP_ONLY:
  step("create", lambda: write_new("a.txt", b"hello world\n"))
  step("create excl existing", lambda: write_new("a.txt", b"x", os.O_EXCL))
  step("create excl new", lambda: write_new("b.txt", b"bee", os.O_EXCL))
  step("truncating open", lambda: write_new("b.txt", b"B", os.O_TRUNC))
  step("append", lambda: write_new("log.txt", b"first line\n") and append_offset())
  step("pwrite hole", lambda: (write_new("big.bin", b""), os.truncate("big.bin", 0), open("big.bin", "r+b").write(b"x" * 100000)))
  step("pwrite at offset", lambda: os.pwrite(os.open("big.bin", os.O_WRONLY), b"MIDDLE", 50000))
  step("truncate shrink", lambda: os.truncate("big.bin", 80000))
  step("truncate grow", lambda: os.truncate("a.txt", 100))
  step("fallocate", lambda: subprocess.run(["fallocate", "-l", "1M", "alloc.bin"], check=True).returncode)
  step("fallocate keep-size punch", lambda: subprocess.run(["fallocate", "-p", "-o", "4096", "-l", "8192", "big.bin"], check=True).returncode)
  step("fallocate zero range", lambda: subprocess.run(["fallocate", "-z", "-o", "0", "-l", "4096", "big.bin"], check=True).returncode)
  step("copy_file_range", copy_range)
  step("fsync fdatasync fsyncdir O_SYNC", fsyncs)
  step("O_DIRECT", direct_io)
  step("shared mmap", shared_mmap)
  step("flock and lockf", locks)
  step("mkdir", lambda: os.makedirs("d1/d2/d3"))
  step("mkdir existing", lambda: os.mkdir("d1"))
  step("rmdir not empty", lambda: os.rmdir("d1"))
  step("rename over existing", lambda: (write_new("d1/x", b"x"), write_new("d1/y", b"y"), os.rename("d1/x", "d1/y")))
  step("rename noreplace existing", lambda: (write_new("d1/z", b"z"), renameat2("d1/z", "d1/y", 1)))
  step("rename noreplace new", lambda: renameat2("d1/z", "d1/w", 1))
  step("rename exchange", lambda: renameat2("d1/w", "d1/y", 2))
  step("rename directory", lambda: os.rename("d1/d2", "moved"))
  step("hard link", lambda: os.link("a.txt", "a-link.txt"))
  step("link count", lambda: os.stat("a.txt").st_nlink)
  step("symlink", lambda: os.symlink("a.txt", "sym"))
  step("readlink", lambda: os.readlink("sym"))
  step("dangling symlink", lambda: os.symlink("nowhere", "dangling"))
  step("unlink", lambda: os.unlink("b.txt"))
  step("unlink missing", lambda: os.unlink("b.txt"))
  step("mkfifo", lambda: os.mkfifo("fifo", 0o640))
  step("privileges cleared", privileges_cleared)
  step("chmod", lambda: os.chmod("a.txt", 0o4751))
  step("chown", lambda: os.chown("log.txt", 1234, 5678))
  step("utime", lambda: os.utime("log.txt", ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321)))
  step("setxattr", lambda: os.setxattr("a.txt", "user.color", b"blue"))
  step("getxattr", lambda: os.getxattr("a.txt", "user.color"))
  step("getxattr missing", lambda: os.getxattr("a.txt", "user.none"))
  step("removexattr", lambda: (os.setxattr("a.txt", "user.gone", b"1"), os.removexattr("a.txt", "user.gone")))
  step("acl", lambda: subprocess.run(["setfacl", "-m", "u:4321:rw", "log.txt"], check=True).returncode)
  step("unlink open file", lambda: (lambda fd: (os.unlink("alloc.bin"), os.write(fd, b"still"), os.close(fd)))(os.open("alloc.bin", os.O_RDWR)))
  step("statvfs", lambda: os.statvfs(".").f_namemax)
  step("many files", lambda: [write_new(f"many-{i:03}", str(i).encode()) for i in range(300)] and len(os.listdir(".")))


def dump():
    lines = []
    for dirpath, dirnames, filenames in os.walk(".", followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            line = f"{path} {oct(st.st_mode)} {st.st_uid}:{st.st_gid} nlink={st.st_nlink}"
            if stat.S_ISREG(kind):
                line += f" size={st.st_size} sha={hashlib.sha256(open(path, 'rb').read()).hexdigest()[:16]}"
            elif stat.S_ISLNK(kind):
                line += f" -> {os.readlink(path)}"
            if path.endswith("log.txt"):
                line += f" mtime={st.st_mtime_ns}"
            if not stat.S_ISLNK(kind):
                line += " xattrs=" + ",".join(sorted(f"{a}={os.getxattr(path, a)!r}" for a in os.listxattr(path) if a.startswith("user.")))
                acl = subprocess.run(["getfacl", "-cp", path], capture_output=True, text=True).stdout.strip().replace("\n", ";")
                line += f" acl={acl}"
            lines.append(line)
    return lines


if len(sys.argv) > 2 and sys.argv[2] == "dump":
    print("\n".join(dump()))
    sys.exit(0)

print("\n".join(out))
print("--- tree")
print("\n".join(dump()))
