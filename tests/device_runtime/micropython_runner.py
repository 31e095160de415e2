"""Run portable test modules under MicroPython, where pytest does not exist.

Usage, from the repository root::

    micropython -X heapsize=64K tests/device_runtime/micropython_runner.py \
        tests.device_runtime.core.test_cbor [MORE.MODULES ...]

Every ``test_*`` function of every named module is called; each failure prints
one ``FAIL`` line naming the test and the exception (its traceback follows,
indented), then a summary line. The exit status is non-zero when anything
failed, a module did not import, or a module had no tests at all, so that a run
which checked nothing can never pass.

The repository root is appended to ``sys.path``, after whatever MICROPYPATH
lists: a tree of mpy-cross compiled modules named there is found first, the
way a device loads precompiled bytecode rather than compiling source in its
small heap (compiling a 12 KB module from source takes more than 64 KiB).
``tests/device_runtime/test_under_micropython.py`` builds that tree and runs
this script once per portable module. The script also runs under CPython.
"""

import gc
import sys

RUNNER_PATH = "tests/device_runtime/micropython_runner.py"


def _repo_root():
    here = globals().get("__file__", "")
    if here.endswith(RUNNER_PATH):
        root = here[: -len(RUNNER_PATH)].rstrip("/")
        return root or "."
    return "."


def _traceback_text(exc):
    import io

    stream = io.StringIO()
    print_exception = getattr(sys, "print_exception", None)
    if print_exception is not None:
        print_exception(exc, stream)
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
    return stream.getvalue()


def _report_failure(label, exc):
    print("FAIL " + label + ": " + type(exc).__name__ + ": " + str(exc))
    for line in _traceback_text(exc).split("\n"):
        if line:
            print("    " + line)


def _report_heap(moment):
    """Free heap, so a module that outgrows a small device's heap shows by how much."""
    mem_free = getattr(gc, "mem_free", None)
    if mem_free is not None:
        gc.collect()
        print("heap " + moment + ": " + str(mem_free()) + " bytes free")


def _import(name):
    __import__(name)
    return sys.modules[name]


def run_module(name):
    """Run every test of module *name*; return (passed, failed)."""
    try:
        module = _import(name)
    except Exception as exc:
        _report_failure(name + " (import)", exc)
        return 0, 1
    _report_heap("after importing " + name)
    passed = 0
    failed = 0
    for attr in sorted(dir(module)):
        if not attr.startswith("test_"):
            continue
        test = getattr(module, attr)
        if not callable(test):
            continue
        try:
            test()
            passed += 1
        except Exception as exc:
            failed += 1
            _report_failure(name + "." + attr, exc)
        gc.collect()
    if passed + failed == 0:
        print("FAIL " + name + ": no test_* functions found")
        failed = 1
    print(name + ": " + str(passed) + " passed, " + str(failed) + " failed")
    return passed, failed


def main(argv):
    if not argv:
        print("usage: micropython_runner.py MODULE [MODULE ...]")
        return 2
    root = _repo_root()
    if root not in sys.path:
        sys.path.append(root)
    passed = 0
    failed = 0
    for name in argv:
        gc.collect()
        module_passed, module_failed = run_module(name)
        passed += module_passed
        failed += module_failed
    gc.collect()
    print(
        "summary: "
        + str(passed)
        + " passed, "
        + str(failed)
        + " failed in "
        + str(len(argv))
        + " modules"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
