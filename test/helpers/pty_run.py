"""Runs a command on a new pseudo-terminal, as a user's shell would: the command is a session
leader with the terminal as its controlling terminal, at ROWS x COLS.

    python3 pty_run.py ROWS COLS COMMAND [ARG...]

Our stdin is typed into the terminal, the terminal's output goes to our stdout, and each line
"resize ROWS COLS" on fd 3 changes the window size (the command gets SIGWINCH). Exits with the
command's exit code once it has ended and its output has been read.
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


rows, cols, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
pid, master = pty.fork()
if pid == 0:
    set_size(0, rows, cols)
    os.execvp(argv[0], argv)

inputs = [0, 3]
control = b""
while True:
    ready, _, _ = select.select([master] + inputs, [], [])
    if master in ready:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 65536)
        if data:
            os.write(master, data)
        else:
            inputs.remove(0)
    if 3 in ready:
        data = os.read(3, 4096)
        if not data:
            inputs.remove(3)
        control += data
        while b"\n" in control:
            line, control = control.split(b"\n", 1)
            words = line.split()
            if len(words) == 3 and words[0] == b"resize":
                set_size(master, int(words[1]), int(words[2]))

_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF if os.waitstatus_to_exitcode(status) >= 0 else 128 - os.waitstatus_to_exitcode(status))
