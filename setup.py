"""The one compiled part of sdlib, optional: a C reader of safetensors headers that makes a
first scan about twice as fast. Where it cannot be built (no C compiler), sdlib installs
without it and reads headers in Python, with the same results."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sdlib.files._stheader", ["sdlib/files/_stheader.c"], optional=True),
    ]
)
