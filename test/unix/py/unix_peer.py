"""The Python side of ipcbox's Unix IPC interop tests, with only the standard
library: ctypes on librt/libc for mq_* and sem_* (there is no posix_ipc
module here), os.mkfifo/os.open for FIFOs, mmap for files. Prints one line
per step, flushed ("ready" before it blocks).

  mq-send NAME PRIO MSG [PRIO MSG]...   send each to an existing queue
  mq-recv NAME COUNT                    blocking receive COUNT times: "PRIO MSG"
  sem-post NAME | sem-wait NAME         sem_post once | "ready", sem_wait, "acquired"
  fifo-write PATH MSG | fifo-read PATH  blocking open, write MSG | read to EOF: "got N MSG"
  mkfifo PATH                           os.mkfifo
  map-read PATH SIZE | map-write PATH SIZE   as the C peer: "sum S" | byte i = (i*7+3)&255
"""
import ctypes
import ctypes.util
import mmap
import os
import sys

O_RDONLY, O_WRONLY = os.O_RDONLY, os.O_WRONLY
rt = ctypes.CDLL(ctypes.util.find_library("rt") or "librt.so.1", use_errno=True)
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class MqAttr(ctypes.Structure):
    _fields_ = [("mq_flags", ctypes.c_long), ("mq_maxmsg", ctypes.c_long),
                ("mq_msgsize", ctypes.c_long), ("mq_curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]


rt.mq_open.restype = ctypes.c_int
rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
rt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
rt.mq_receive.restype = ctypes.c_ssize_t
rt.mq_receive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint)]
rt.mq_getattr.argtypes = [ctypes.c_int, ctypes.POINTER(MqAttr)]
libc.sem_open.restype = ctypes.c_void_p
libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.sem_post.argtypes = [ctypes.c_void_p]
libc.sem_wait.argtypes = [ctypes.c_void_p]


def check(r, what):
    if r == -1 or r is None:
        err = ctypes.get_errno()
        print(f"error {what} {os.strerror(err)}", flush=True)
        sys.exit(1)
    return r


def say(line):
    print(line, flush=True)


def main(cmd, args):
    if cmd == "mq-send":
        q = check(rt.mq_open(args[0].encode(), O_WRONLY), "mq_open")
        for prio, msg in zip(args[1::2], args[2::2]):
            data = msg.encode()
            check(rt.mq_send(q, data, len(data), int(prio)), "mq_send")
        say("sent")
    elif cmd == "mq-recv":
        q = check(rt.mq_open(args[0].encode(), O_RDONLY), "mq_open")
        attr = MqAttr()
        check(rt.mq_getattr(q, ctypes.byref(attr)), "mq_getattr")
        buf = ctypes.create_string_buffer(attr.mq_msgsize)
        say("ready")
        for _ in range(int(args[1])):
            prio = ctypes.c_uint()
            n = check(rt.mq_receive(q, buf, attr.mq_msgsize, ctypes.byref(prio)), "mq_receive")
            say(f"{prio.value} {buf.raw[:n].decode()}")
    elif cmd in ("sem-post", "sem-wait"):
        s = check(libc.sem_open(args[0].encode(), 0), "sem_open")
        if cmd == "sem-post":
            check(libc.sem_post(s), "sem_post")
            say("posted")
        else:
            say("ready")
            check(libc.sem_wait(s), "sem_wait")
            say("acquired")
    elif cmd == "mkfifo":
        os.mkfifo(args[0], 0o600)
        say("made")
    elif cmd == "fifo-write":
        fd = os.open(args[0], O_WRONLY)
        os.write(fd, args[1].encode())
        os.close(fd)
        say("written")
    elif cmd == "fifo-read":
        fd = os.open(args[0], O_RDONLY)
        say("ready")
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
        say(f"got {len(data)} {data.decode()}")
    elif cmd in ("map-read", "map-write"):
        size = int(args[1])
        with open(args[0], "r+b") as f, mmap.mmap(f.fileno(), size) as m:
            if cmd == "map-write":
                m[:size] = bytes((i * 7 + 3) & 255 for i in range(size))
                m.flush()
                say("mapped-written")
            else:
                say(f"sum {sum(m[:size])}")
    else:
        sys.exit(2)


main(sys.argv[1], sys.argv[2:])
