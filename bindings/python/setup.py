"""Builds the C library and bundles it into the package, so that
`pip install ./bindings/python` works without `make install`.

From a checkout (this file two levels below the repository's Makefile) the
build runs `make lib` there and copies lib/libsimclr.so.X.Y.Z into the wheel
as libsimclr/libsimclr.so.MAJOR. SIMCLR_LIBRARY=/path/to/libsimclr.so.N
bundles that file instead (no make). SIMCLR_NO_BUNDLE=1 builds a pure-Python
package that finds the library at run time (SIMCLR_LIBRARY, the system path).
A bundled library makes the wheel platform-specific."""
import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def header_version():
    text = open(os.path.join(REPO, "include", "simclr.h")).read()
    return [text.split("#define SIMCLR_VERSION_%s " % k)[1].split()[0] for k in ("MAJOR", "MINOR", "PATCH")]


def find_library():
    env = os.environ.get("SIMCLR_LIBRARY")
    if env:
        if not os.path.exists(env):
            raise SystemExit("libsimclr setup: SIMCLR_LIBRARY=%s does not exist" % env)
        return env
    if not os.path.exists(os.path.join(REPO, "Makefile")):
        raise SystemExit("libsimclr setup: not in a libsimclr checkout; set SIMCLR_LIBRARY to a built "
                         "libsimclr.so.N or SIMCLR_NO_BUNDLE=1")
    make = os.environ.get("MAKE", "make")
    subprocess.check_call([make, "-C", REPO, "lib"])
    major, minor, patch = header_version()
    path = os.path.join(REPO, "lib", "libsimclr.so.%s.%s.%s" % (major, minor, patch))
    if not os.path.exists(path):
        raise SystemExit("libsimclr setup: `make lib` did not produce %s" % path)
    return path


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        if os.environ.get("SIMCLR_NO_BUNDLE"):
            return
        src = find_library()
        dest_dir = os.path.join(self.build_lib, "libsimclr")
        for old in glob.glob(os.path.join(dest_dir, "libsimclr.so.*")):
            os.remove(old)
        # the soname the bindings load: libsimclr.so.MAJOR
        major = os.path.basename(src).split(".so.")[1].split(".")[0]
        shutil.copyfile(src, os.path.join(dest_dir, "libsimclr.so.%s" % major))


class BinaryDistribution(Distribution):
    """The wheel carries a shared library: tag it for this platform."""

    def has_ext_modules(self):
        return not os.environ.get("SIMCLR_NO_BUNDLE")


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
