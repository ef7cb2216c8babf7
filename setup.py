"""The compiled kernels; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# -fassociative-math (with the two flags it needs) lets the compiler vectorize the float sums of
# the dot products, and -ffp-contract=fast fuse multiply-adds, as numba's fastmath did; no
# -ffast-math, which would also flush denormals in every process that loads the module. The
# kernels pick their instruction set at load time (target_clones), so one build runs anywhere.
FLAGS = ["-O3", "-pthread", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros", "-fassociative-math",
         "-ffp-contract=fast"]

setup(ext_modules=[Extension("dlcli.kernels._word2vec", ["dlcli/kernels/_word2vec.c"], extra_compile_args=FLAGS,
                             extra_link_args=["-pthread"])])
