"""Runs one integration test function in this process (tests/run starts
one of these per test): python3 runone.py FILE FUNCTION.

Exit status: 0 passed, 1 failed (traceback on stderr), 77 skipped (reason
on stdout as "SKIP: ..."). SIGTERM (tests/run's timeout) becomes SystemExit
so that atexit handlers stop the slapd and jitd this test started.
"""

import importlib.util
import os
import signal
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import jittest  # noqa: E402  (after the path change)


def _on_term(signum, frame):
    sys.stderr.write("runone: got signal %d (timeout?) while in:\n%s"
                     % (signum, "".join(traceback.format_stack(frame))))
    raise SystemExit(124)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: runone.py FILE FUNCTION\n")
        return 2
    path, name = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, _on_term)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    modname = os.path.splitext(os.path.basename(path))[0]
    try:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
        fn = getattr(mod, name)
        fn()
    except jittest.Skip as e:
        sys.stdout.write("SKIP: %s\n" % e)
        sys.stdout.flush()
        return 77
    except SystemExit:
        for text in jittest.DIAGNOSTICS:
            sys.stderr.write("\n" + text.rstrip("\n") + "\n")
        raise
    except BaseException:
        sys.stdout.flush()
        traceback.print_exc()
        for text in jittest.DIAGNOSTICS:
            sys.stderr.write("\n" + text.rstrip("\n") + "\n")
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(rc)
