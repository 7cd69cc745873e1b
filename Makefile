# libsimclr — build, test, install.
#
#   make                 lib/libsimclr.a and lib/libsimclr.so.X.Y.Z (OpenBLAS)
#   make test            everything CI checks (unit, ABI, header, PyTorch, sanitizers)
#   make demo            SimCLR pre-training + evaluation on Fashion-MNIST
#   make bench           benchmarks next to PyTorch (not tests)
#   make BLAS=reference  build against Debian's reference BLAS instead of OpenBLAS
#   make CC=clang        build with clang
#   make install PREFIX=/usr/local DESTDIR=   /   make uninstall

PYTHON  ?= /usr/bin/python3
CC      ?= cc
CXX     ?= c++
BLAS    ?= openblas
PREFIX  ?= /usr/local
LIBDIR_INSTALL ?= $(PREFIX)/lib
INCDIR_INSTALL ?= $(PREFIX)/include
BINDIR_INSTALL ?= $(PREFIX)/bin
MANDIR_INSTALL ?= $(PREFIX)/share/man
# The MPI companion (companions/mpi) builds with mpicc; make install installs
# it when mpicc is found (WITH_MPI=0: never; WITH_MPI=1: always).
MPICC    ?= mpicc
WITH_MPI ?= $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
# The medical companion (companions/medical: DCMTK, OpenJPEG, libtiff): make
# install installs it when their headers are found (WITH_MEDICAL=0/1).
OPENJPEG_INC ?= $(firstword $(wildcard /usr/include/openjpeg-*))
WITH_MEDICAL ?= $(if $(and $(wildcard /usr/include/dcmtk/dcmdata/dcfilefo.h),$(OPENJPEG_INC),$(wildcard /usr/include/$(MULTIARCH)/tiffio.h /usr/include/tiffio.h)),1,0)

# The version lives once, in the header. The soname is libsimclr.so.MAJOR and
# changes only with an incompatible ABI change (docs/architecture.md, "Build
# and ABI"); the file is libsimclr.so.MAJOR.MINOR.PATCH.
VERSION_MAJOR := $(shell sed -n 's/^\#define SIMCLR_VERSION_MAJOR \([0-9]*\).*/\1/p' include/simclr.h)
VERSION_MINOR := $(shell sed -n 's/^\#define SIMCLR_VERSION_MINOR \([0-9]*\).*/\1/p' include/simclr.h)
VERSION_PATCH := $(shell sed -n 's/^\#define SIMCLR_VERSION_PATCH \([0-9]*\).*/\1/p' include/simclr.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
ifeq ($(BLAS),openblas)
  BLAS_CFLAGS := -DSIMCLR_OPENBLAS
  BLAS_LIBS   := -lopenblas
else ifeq ($(BLAS),reference)
  # Debian routes libblas.so.3 through alternatives (often to OpenBLAS); the
  # rpath pins the reference implementation for this build.
  REFBLAS_DIR := /usr/lib/$(MULTIARCH)/blas
  BLAS_CFLAGS :=
  BLAS_LIBS   := -L$(REFBLAS_DIR) -Wl,--disable-new-dtags,-rpath,$(REFBLAS_DIR) -lblas
else
  $(error BLAS must be openblas or reference, not '$(BLAS)')
endif

# SAN=1: AddressSanitizer + UndefinedBehaviorSanitizer build.
SAN ?=
ifeq ($(SAN),1)
  SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  OPT ?= -O1 -g
else
  SAN_FLAGS :=
  OPT ?= -O2 -g
endif

ifeq ($(BLAS)$(SAN),openblas)
  BUILD ?= build/main
  OUT   ?= lib
else
  BUILD ?= build/$(BLAS)$(if $(SAN),-san)
  OUT   ?= $(BUILD)/lib
endif

WARN     := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   ?=
CPPFLAGS += -Iinclude -Isrc
LIB_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fPIC -fvisibility=hidden \
              -DSIMCLR_BUILDING $(BLAS_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
LIBS     := $(BLAS_LIBS) -lz -lpthread -lm

SRCS := $(sort $(wildcard src/*/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/%.o)

# The cpu backend's kernels (src/backend/cpu/) are compiled once per
# instruction set; the context picks a copy at run time (src/backend/isa.c,
# SIMCLR_ISA forces a narrower one). Non-x86-64 builds get the portable copy.
ARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter x86_64%,$(ARCH)),)
  CPU_ISAS := portable avx2 avx512
else
  CPU_ISAS := portable
  LIB_CFLAGS_ARCH := -DSIMCLR_PORTABLE_ONLY
endif
ISA_FLAGS_portable :=
ISA_FLAGS_avx2     := -mavx2 -mfma
ISA_FLAGS_avx512   := -mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma
CPU_SRCS := $(sort $(wildcard src/backend/cpu/*.c))
CPU_OBJS := $(foreach isa,$(CPU_ISAS),$(CPU_SRCS:src/backend/cpu/%.c=$(BUILD)/src/backend/cpu-$(isa)/%.o))
OBJS += $(CPU_OBJS)
DEPS := $(OBJS:.o=.d)

STATIC  := $(OUT)/libsimclr.a
SHARED  := $(OUT)/libsimclr.so.$(VERSION)
SONAME  := libsimclr.so.$(VERSION_MAJOR)

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) $(BLAS_CFLAGS) $(SAN_FLAGS) $(CFLAGS)

# tests/tool_*.c: helper programs the Python cross-checks drive (not tests themselves).
TOOL_SRCS := $(sort $(wildcard tests/tool_*.c))
TOOL_BINS := $(TOOL_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: all lib deps deps-demo test unit check-symbols check-header sanitize test-reference \
        test-python tools examples run-examples docs demo bench install uninstall clean \
        tsan-embed image bench-decode cli test-cli soak medical
all: lib image cli
lib: $(STATIC) $(SHARED)

# The cpu backend's kernels are plain loops written for the vectorizer, which
# -O2 (gcc 12) runs only in its cheapest mode: -O3 makes a training step about
# 18% faster at width 16 (bench_step). Not under SAN (keeps -O1 for speed).
# -ffp-contract=off: no fused multiply-add contraction, so every ISA copy
# computes the same operations in the same order.
KERNEL_OPT := $(if $(SAN),,-O3) -ffp-contract=off

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(LIB_CFLAGS) $(LIB_CFLAGS_ARCH) -MMD -MP -c $< -o $@

define CPU_ISA_RULE
$$(BUILD)/src/backend/cpu-$(1)/%.o: src/backend/cpu/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(LIB_CFLAGS) $$(KERNEL_OPT) $$(ISA_FLAGS_$(1)) -DSIMCLR__CPU_ISA=$(1) -MMD -MP -c $$< -o $$@
endef
$(foreach isa,$(CPU_ISAS),$(eval $(call CPU_ISA_RULE,$(isa))))

$(STATIC): $(OBJS)
	@mkdir -p $(OUT)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(OBJS) lib/simclr.map
	@mkdir -p $(OUT)
	$(CC) -shared -o $@ $(OBJS) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/simclr.map \
	      -Wl,--no-undefined $(SAN_FLAGS) $(LIBS)
	ln -sf libsimclr.so.$(VERSION) $(OUT)/$(SONAME)
	ln -sf $(SONAME) $(OUT)/libsimclr.so

# Tests link the static library: they may reach internal simclr__ symbols
# (kernels, RNG), which the shared object hides.
$(BUILD)/tests/%: tests/%.c tests/test_util.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) $< -o $@ $(STATIC) -lcmocka $(LIBS)

# ---- fault injection (issue 15): tests/test_faults.c ----------------------
# The I/O hook of src/io/file.c (SIMCLR_FAULT_INJECTION) exists only in this
# object, linked into the fault test ahead of the library archive, which then
# never pulls its own file.o: release objects carry no hook and no branch.
$(BUILD)/tests/fault_file.o: src/io/file.c src/io/file.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(LIB_CFLAGS) -DSIMCLR_FAULT_INJECTION -c $< -o $@

$(BUILD)/tests/test_faults: tests/test_faults.c tests/test_util.h $(BUILD)/tests/fault_file.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) $< -o $@ $(BUILD)/tests/fault_file.o $(STATIC) -lcmocka $(LIBS)
# ---- end fault injection ---------------------------------------------------

$(BUILD)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) $< -o $@ $(STATIC) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(TEST_CFLAGS) $< -o $@ $(STATIC) $(LIBS)

CXX_EXAMPLE_BINS := $(patsubst examples/cpp/%.cpp,$(BUILD)/examples/cpp/%,$(sort $(wildcard examples/cpp/*.cpp)))
$(BUILD)/examples/cpp/%: examples/cpp/%.cpp include/simclr.hpp include/simclr.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -Iinclude $(OPT) -Wall -Wextra -Wpedantic -Werror -Wshadow $(SAN_FLAGS) $< -o $@ $(STATIC) $(LIBS)

examples: $(EXAMPLE_BINS) $(CXX_EXAMPLE_BINS)

# The C++ and Node examples, run as tests (each prints "... ok").
run-examples: examples $(SHARED)
	@for x in $(CXX_EXAMPLE_BINS); do $$x || exit 1; done
	@$(BUILD)/examples/manual_step
	@$(BUILD)/examples/augment_grid $(BUILD)/augment_grid.png && echo "augment grid: wrote $(BUILD)/augment_grid.png"
	@SIMCLR_LIBRARY=$(abspath $(SHARED)) sh tests/run_node_example.sh
	@# The demo end to end in seconds: 3 steps, small probes (validation-chosen decay included).
	@$(BUILD)/examples/train_fashion_mnist --steps 3 --batch 16 --eval-train 300 --eval-test 200 --probe-epochs 20 \
	   --threads 2 --out $(BUILD)/demo-smoke > $(BUILD)/demo-smoke.txt 2>&1 && grep -q '(ours)' $(BUILD)/demo-smoke.txt \
	   && echo "demo: 3-step run evaluated" || { cat $(BUILD)/demo-smoke.txt; echo "demo smoke run failed"; exit 1; }
	@# Its progress in a log (stdout and stderr to a file): plain lines, no '\r' frames, at most 22 lines a phase.
	@[ "$$(tr -dc '\r' < $(BUILD)/demo-smoke.txt | wc -c)" -eq 0 ] && awk '{ if ($$1 == p) n++; else { n = 1; p = $$1 } \
	   if (n > m) m = n } END { exit m > 22 }' $(BUILD)/demo-smoke.txt && echo "demo: progress in a log is plain lines" \
	   || { echo "demo smoke run: carriage returns or over 22 lines of one phase in $(BUILD)/demo-smoke.txt"; exit 1; }

docs:
	$(PYTHON) tools/gen_api_md.py

deps:
	@sh tools/deps.sh test

deps-demo:
	@sh tools/deps.sh demo

# The one test command: README and CI call it.
test: deps
	$(MAKE) lib image cli examples medical
	$(MAKE) unit
	$(MAKE) check-symbols check-header
	$(MAKE) test-python
	$(MAKE) run-examples
	$(MAKE) test-mpi
	sh tests/test_install.sh
	$(MAKE) test-cli
	$(MAKE) sanitize
	$(MAKE) robustness
	$(MAKE) tsan-embed
	@echo "make test: all checks passed"

unit: $(TEST_BINS)
	@sh tools/run_tests.sh $(TEST_BINS)

check-symbols: $(SHARED)
	@sh tools/check_symbols.sh $(SHARED) tests/symbols.txt

check-header:
	$(CC) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/simclr.h
	$(CXX) -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ include/simclr.h
	$(CC) -Iinclude -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/simclr_image.h
	$(CXX) -Iinclude -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ include/simclr_image.h
	$(CC) -Iinclude -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/simclr_medical.h
	$(CXX) -Iinclude -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ include/simclr_medical.h
	@# simclr_mpi.h includes <mpi.h>: both with MPI's include flags (from mpicc;
	@# OMPI_SKIP_MPICXX: without Open MPI's deprecated C++ bindings).
	$(CC) -Iinclude $(MPI_INCFLAGS) -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/simclr_mpi.h
	$(CXX) -Iinclude $(MPI_INCFLAGS) -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX -std=c++11 -pedantic -Wall -Wextra \
	      -Werror -fsyntax-only -x c++ include/simclr_mpi.h
	@echo "header: compiles as C11 and C++"

tools: $(TOOL_BINS)

test-python: $(SHARED) $(TOOL_BINS)
	SIMCLR_LIBRARY=$(abspath $(SHARED)) SIMCLR_BUILD=$(abspath $(BUILD)) SIMCLR_MEDICAL_LIBRARY=$(abspath $(MED_SHARED)) \
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/python

# One thread count for the kernel sweep under the sanitizers (memory errors
# do not depend on it; the plain unit run covers 1, 2 and 3 threads).
sanitize:
	SIMCLR_TEST_THREADS=2 $(MAKE) SAN=1 unit

test-reference:
	$(MAKE) BLAS=reference unit

# Concurrent embedding under ThreadSanitizer (issue 13): threads with their
# own contexts and embedders over one encoder. Its own build directory, so
# it does not mix with a general TSan build. SAN=tsan keeps the kernels at
# the sanitizer's -O1 (as SAN=1 does).
TSAN_EMBED_DIR := build/tsan-embed
tsan-embed:
	$(MAKE) SAN=tsan BUILD=$(TSAN_EMBED_DIR) OUT=$(TSAN_EMBED_DIR)/lib OPT="-O1 -g" \
	        SAN_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	        $(TSAN_EMBED_DIR)/tests/test_embed
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(TSAN_EMBED_DIR)/tests/test_embed
	@echo "tsan-embed: concurrent embedding is race-free"

# Only the demo program: the other examples need the image companion
# (libpng, libjpeg), which the demo's package list does not install.
demo: deps-demo
	$(MAKE) lib $(BUILD)/examples/train_fashion_mnist
	$(BUILD)/examples/train_fashion_mnist $(DEMO_ARGS)

bench: lib $(BENCH_BINS)
	@SIMCLR_BUILD=$(abspath $(BUILD)) SIMCLR_LIBRARY=$(abspath $(SHARED)) PYTHON=$(PYTHON) sh bench/run.sh

# Soak test of an embedding service (issue 24): 4 threads with their own
# contexts and embedders over one encoder for SOAK_SECONDS (default 600),
# RSS sampled; fails when RSS or its peak grows after warm-up. Not part of
# make test. make soak SOAK_SECONDS=60 for a quick check.
SOAK_SECONDS ?= 600
soak: lib $(BUILD)/bench/soak_embed
	SIMCLR_BUILD=$(abspath $(BUILD)) SOAK_SECONDS=$(SOAK_SECONDS) sh bench/soak_embed.sh

install: lib image cli $(if $(filter 1,$(WITH_MPI)),mpi) $(if $(filter 1,$(WITH_MEDICAL)),medical)
	install -d $(DESTDIR)$(INCDIR_INSTALL) $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig
	install -m 644 include/simclr.h include/simclr.hpp $(DESTDIR)$(INCDIR_INSTALL)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR_INSTALL)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR_INSTALL)/
	ln -sf libsimclr.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR_INSTALL)|' -e 's|@INCDIR@|$(INCDIR_INSTALL)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS@|$(LIBS)|' lib/libsimclr.pc.in \
	    > $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr.pc
	ln -sf libsimclr.pc $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/simclr.pc
	# issue 13: the image companion, the simclr command and its man page
	install -d $(DESTDIR)$(BINDIR_INSTALL) $(DESTDIR)$(MANDIR_INSTALL)/man1
	install -m 644 include/simclr_image.h $(DESTDIR)$(INCDIR_INSTALL)/
	install -m 644 $(IMG_STATIC) $(DESTDIR)$(LIBDIR_INSTALL)/
	install -m 755 $(IMG_SHARED) $(DESTDIR)$(LIBDIR_INSTALL)/
	ln -sf libsimclr_image.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(IMG_SONAME)
	ln -sf $(IMG_SONAME) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_image.so
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR_INSTALL)/simclr
	install -m 644 docs/simclr.1 $(DESTDIR)$(MANDIR_INSTALL)/man1/simclr.1
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR_INSTALL)|' -e 's|@INCDIR@|$(INCDIR_INSTALL)|' \
	    -e 's|@VERSION@|$(VERSION)|' lib/libsimclr_image.pc.in > $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_image.pc
ifeq ($(WITH_MPI),1)
	# issue 24: the MPI companion (include/simclr_mpi.h needs <mpi.h>: hosts build with mpicc)
	install -m 644 include/simclr_mpi.h $(DESTDIR)$(INCDIR_INSTALL)/
	install -m 644 $(MPI_STATIC) $(DESTDIR)$(LIBDIR_INSTALL)/
	install -m 755 $(MPI_SHARED) $(DESTDIR)$(LIBDIR_INSTALL)/
	ln -sf libsimclr_mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_mpi.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR_INSTALL)|' -e 's|@INCDIR@|$(INCDIR_INSTALL)|' \
	    -e 's|@VERSION@|$(VERSION)|' lib/libsimclr_mpi.pc.in > $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_mpi.pc
else
	@echo "install: WITH_MPI=0 (the default when $(MPICC) is not found): libsimclr_mpi not installed"
endif
ifeq ($(WITH_MEDICAL),1)
	# issue 28: the medical companion (DCMTK, OpenJPEG, libtiff)
	install -m 644 include/simclr_medical.h $(DESTDIR)$(INCDIR_INSTALL)/
	install -m 644 $(MED_STATIC) $(DESTDIR)$(LIBDIR_INSTALL)/
	install -m 755 $(MED_SHARED) $(DESTDIR)$(LIBDIR_INSTALL)/
	ln -sf libsimclr_medical.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(MED_SONAME)
	ln -sf $(MED_SONAME) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_medical.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR_INSTALL)|' -e 's|@INCDIR@|$(INCDIR_INSTALL)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@MEDLIBS@|$(MED_LIBS) -lstdc++|' lib/libsimclr_medical.pc.in \
	    > $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_medical.pc
else
	@echo "install: WITH_MEDICAL=0 (the default without DCMTK's, OpenJPEG's or libtiff's headers): libsimclr_medical not installed"
endif

uninstall:
	rm -f $(DESTDIR)$(INCDIR_INSTALL)/simclr.h $(DESTDIR)$(INCDIR_INSTALL)/simclr.hpp $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr.a \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr.so $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr.pc \
	      $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/simclr.pc
	rm -f $(DESTDIR)$(INCDIR_INSTALL)/simclr_image.h $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_image.a \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_image.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/$(IMG_SONAME) \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_image.so $(DESTDIR)$(BINDIR_INSTALL)/simclr \
	      $(DESTDIR)$(MANDIR_INSTALL)/man1/simclr.1 $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_image.pc
	rm -f $(DESTDIR)$(INCDIR_INSTALL)/simclr_mpi.h $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_mpi.a \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_mpi.so.$(VERSION_MAJOR) \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_mpi.so $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_mpi.pc
	rm -f $(DESTDIR)$(INCDIR_INSTALL)/simclr_medical.h $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_medical.a \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_medical.so.$(VERSION) $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_medical.so.$(VERSION_MAJOR) \
	      $(DESTDIR)$(LIBDIR_INSTALL)/libsimclr_medical.so $(DESTDIR)$(LIBDIR_INSTALL)/pkgconfig/libsimclr_medical.pc

clean:
	rm -rf build lib/libsimclr.a lib/libsimclr.so* lib/libsimclr_image.a lib/libsimclr_image.so* lib/libsimclr_medical.a lib/libsimclr_medical.so*

# ---- libsimclr_image: the optional image-decoding companion (issue 13) ----
# libpng + libjpeg-turbo live here, never in libsimclr.so. `make lib` builds
# the core alone.
IMG_SRCS   := $(sort $(wildcard companions/image/*.c))
IMG_OBJS   := $(IMG_SRCS:%.c=$(BUILD)/%.o)
IMG_STATIC := $(OUT)/libsimclr_image.a
IMG_SHARED := $(OUT)/libsimclr_image.so.$(VERSION)
IMG_SONAME := libsimclr_image.so.$(VERSION_MAJOR)
IMG_LIBS   := -lpng -ljpeg -lz

image: $(IMG_STATIC) $(IMG_SHARED)

$(IMG_STATIC): $(IMG_OBJS)
	@mkdir -p $(OUT)
	rm -f $@
	ar rcs $@ $^

$(IMG_SHARED): $(IMG_OBJS) $(SHARED) companions/image/simclr_image.map
	$(CC) -shared -o $@ $(IMG_OBJS) -Wl,-soname,$(IMG_SONAME) -Wl,--version-script=companions/image/simclr_image.map \
	      -Wl,--no-undefined $(SAN_FLAGS) -L$(OUT) -lsimclr $(IMG_LIBS)
	ln -sf libsimclr_image.so.$(VERSION) $(OUT)/$(IMG_SONAME)
	ln -sf $(IMG_SONAME) $(OUT)/libsimclr_image.so

# The augmentation grid example writes its PNG with the companion.
$(BUILD)/examples/augment_grid: examples/augment_grid.c $(IMG_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(TEST_CFLAGS) $< -o $@ $(IMG_STATIC) $(STATIC) $(IMG_LIBS) $(LIBS)

# Tests of the companion link it too.
$(BUILD)/tests/test_image_%: tests/test_image_%.c tests/test_util.h $(IMG_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) $< -o $@ $(IMG_STATIC) $(STATIC) -lcmocka $(IMG_LIBS) $(LIBS)

$(BUILD)/bench/bench_decode: bench/bench_decode.c $(IMG_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) $< -o $@ $(IMG_STATIC) $(STATIC) $(IMG_LIBS) $(LIBS)

# JPEG decode throughput next to PIL (an idle machine, please).
bench-decode: lib image cli $(BUILD)/bench/bench_decode
	SIMCLR_BUILD=$(abspath $(BUILD)) PYTHON=$(PYTHON) sh bench/bench_decode.sh

# ---- libsimclr_medical: the optional DICOM/TIFF companion (issue 28) --------
# DCMTK and OpenJPEG (C++: companions/medical/dicom.cpp, compiled with $(CXX)
# behind extern "C" entry points) and libtiff live here, never in libsimclr.so.
# `make medical` builds libsimclr_medical.{a,so} (-fvisibility=hidden,
# SIMCLR_API, version script SIMCLR_MEDICAL_0, linked against libsimclr.so
# as the image companion is). A program linking the archive needs C++'s
# runtime: it is linked with $(CXX).
MED_C_SRCS := $(sort $(wildcard companions/medical/*.c))
MED_OBJS   := $(MED_C_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/companions/medical/dicom.o
MED_STATIC := $(OUT)/libsimclr_medical.a
MED_SHARED := $(OUT)/libsimclr_medical.so.$(VERSION)
MED_SONAME := libsimclr_medical.so.$(VERSION_MAJOR)
MED_LIBS   := -ldcmjpls -ldcmtkcharls -ldcmjpeg -lijg8 -lijg12 -lijg16 -ldcmimgle -ldcmdata -loflog -lofstd -lopenjp2 -ltiff -lz
MED_CXXFLAGS := -std=c++17 $(OPT) $(filter-out -Wstrict-prototypes,$(WARN)) -fPIC -fvisibility=hidden \
                -ffp-contract=off -DSIMCLR_BUILDING $(SAN_FLAGS) $(CFLAGS)

.PHONY: medical clean-medical
medical: $(MED_STATIC) $(MED_SHARED)
test-python: $(MED_SHARED) # tests/python/test_medical_pydicom.py (SIMCLR_MEDICAL_LIBRARY)

$(BUILD)/companions/medical/dicom.o: companions/medical/dicom.cpp
	@mkdir -p $(dir $@)
	$(CXX) -Iinclude -isystem $(OPENJPEG_INC) $(MED_CXXFLAGS) -MMD -MP -c $< -o $@

$(MED_STATIC): $(MED_OBJS)
	@mkdir -p $(OUT)
	rm -f $@
	ar rcs $@ $^

$(MED_SHARED): $(MED_OBJS) $(SHARED) companions/medical/simclr_medical.map
	$(CXX) -shared -o $@ $(MED_OBJS) -Wl,-soname,$(MED_SONAME) -Wl,--version-script=companions/medical/simclr_medical.map \
	      -Wl,--no-undefined $(SAN_FLAGS) -L$(OUT) -lsimclr $(MED_LIBS)
	ln -sf libsimclr_medical.so.$(VERSION) $(OUT)/$(MED_SONAME)
	ln -sf $(MED_SONAME) $(OUT)/libsimclr_medical.so

# Its cmocka test (a unit program: make unit and make sanitize run it)
# links the archive, GDCM and libtiff, and C++'s runtime.
$(BUILD)/tests/test_medical: tests/test_medical.c tests/test_util.h tests/medical_files.h include/simclr_medical.h \
                             $(MED_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TEST_CFLAGS) -c $< -o $@.o
	$(CXX) $@.o -o $@ $(SAN_FLAGS) $(CFLAGS) $(MED_STATIC) $(STATIC) -lcmocka $(MED_LIBS) $(LIBS)

clean: clean-medical
clean-medical:
	rm -f $(OUT)/libsimclr_medical.a $(OUT)/libsimclr_medical.so*

# ---- the `simclr` command (issue 13): links the core and the image companion ----
CLI_SRCS := $(sort $(wildcard cli/*.c))
CLI_BIN  := $(BUILD)/bin/simclr
cli: $(CLI_BIN)
test-python: $(CLI_BIN) # tests/python/test_torch_export.py runs `simclr export` (SIMCLR_BUILD/bin/simclr)
$(CLI_BIN): $(CLI_SRCS) cli/cli.h include/simclr.h include/simclr_image.h $(IMG_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(TEST_CFLAGS) $(CLI_SRCS) -o $@ $(IMG_STATIC) $(STATIC) $(IMG_LIBS) $(LIBS)

# The CLI end to end on a small generated folder (tests/test_cli.sh).
test-cli: $(CLI_BIN)
	SIMCLR_CLI=$(abspath $(CLI_BIN)) PYTHON=$(PYTHON) sh tests/test_cli.sh
	SIMCLR_CLI=$(abspath $(CLI_BIN)) PYTHON=$(PYTHON) sh tests/test_cli_outputs.sh

# ---- MPI companion and distributed tests (issue 14) --------------------------
# companions/mpi: the simclr_comm adapter over MPI, outside the core's
# src/*/*.c so libsimclr itself never links MPI; its header is
# include/simclr_mpi.h (it includes <mpi.h>). `make mpi` builds
# libsimclr_mpi.{a,so} (-fvisibility=hidden, SIMCLR_API, version script
# companions/mpi/simclr_mpi.map, linked against libsimclr.so as the image
# companion is); `make test-mpi` runs the mpirun equivalence and failure
# tests and the header's promises (tests/test_mpi.sh).
MPI_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fPIC $(SAN_FLAGS) $(CFLAGS)
MPI_OBJ    := $(BUILD)/companions/mpi/simclr_mpi.o
MPI_STATIC := $(OUT)/libsimclr_mpi.a
MPI_SHARED := $(OUT)/libsimclr_mpi.so.$(VERSION)
MPI_SONAME := libsimclr_mpi.so.$(VERSION_MAJOR)
# The include flags of <mpi.h> for compilers other than mpicc (check-header's
# C++ pass): Open MPI's -showme:compile, MPICH's -compile-info.
MPI_INCFLAGS = $(shell $(MPICC) -showme:compile 2>/dev/null || $(MPICC) -compile-info 2>/dev/null | cut -d' ' -f2-)

.PHONY: mpi test-mpi
mpi: $(MPI_STATIC) $(MPI_SHARED)

$(MPI_OBJ): companions/mpi/simclr_mpi.c include/simclr_mpi.h include/simclr.h
	@mkdir -p $(dir $@)
	$(MPICC) -Iinclude $(MPI_CFLAGS) -fvisibility=hidden -DSIMCLR_BUILDING -c $< -o $@

$(MPI_STATIC): $(MPI_OBJ)
	@mkdir -p $(OUT)
	rm -f $@
	ar rcs $@ $^

$(MPI_SHARED): $(MPI_OBJ) $(SHARED) companions/mpi/simclr_mpi.map
	@mkdir -p $(OUT)
	$(MPICC) -shared -o $@ $(MPI_OBJ) -Wl,-soname,$(MPI_SONAME) -Wl,--version-script=companions/mpi/simclr_mpi.map \
	      -Wl,--no-undefined $(SAN_FLAGS) -L$(OUT) -lsimclr
	ln -sf libsimclr_mpi.so.$(VERSION) $(OUT)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(OUT)/libsimclr_mpi.so

$(BUILD)/tests/mpi_trainer: tests/mpi/mpi_trainer.c tests/relu_margin.h tests/relu_margin_fwd.h include/simclr_mpi.h \
                            $(MPI_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(MPICC) -Iinclude -Itests $(MPI_CFLAGS) $< -o $@ $(MPI_STATIC) $(STATIC) $(LIBS)

# The header's promises, against the shared libraries (their exports).
$(BUILD)/tests/mpi_api: tests/mpi/mpi_api.c include/simclr_mpi.h $(MPI_SHARED) $(SHARED)
	@mkdir -p $(dir $@)
	$(MPICC) -Iinclude $(MPI_CFLAGS) $< -o $@ -L$(OUT) -Wl,-rpath,$(abspath $(OUT)) -lsimclr_mpi -lsimclr

BENCH_MPI := $(BUILD)/bench/bench_gradcache
$(BENCH_MPI): bench/mpi/bench_gradcache.c include/simclr_mpi.h $(MPI_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(MPICC) -Iinclude $(MPI_CFLAGS) $< -o $@ $(MPI_STATIC) $(STATIC) $(LIBS)

.PHONY: clean-mpi
clean: clean-mpi
clean-mpi:
	rm -f $(OUT)/libsimclr_mpi.a $(OUT)/libsimclr_mpi.so*

# make bench also builds the MPI bench (bench/bench_gradcache.sh runs it).
bench: $(BENCH_MPI)

# The gradient-caching and pipeline tests share the ReLU-margin helper with mpi_trainer.
$(BUILD)/tests/test_gradcache $(BUILD)/tests/test_pipeline: tests/relu_margin.h tests/relu_margin_fwd.h
# ... and the step failure injection with test_moco.
$(BUILD)/tests/test_gradcache $(BUILD)/tests/test_moco $(BUILD)/tests/test_pipeline $(BUILD)/tests/test_swav $(BUILD)/tests/test_finetune_step: tests/step_faults.h

test-mpi: $(BUILD)/tests/mpi_trainer $(BUILD)/tests/mpi_api
	@sh tests/test_mpi.sh $(BUILD)/tests/mpi_trainer $(BUILD)/tests/mpi_api $(MPI_SHARED)
# ---- fuzzing (issue 15): tests/fuzz/ ---------------------------------------
# libFuzzer harnesses for every loader, built with clang against a copy of
# the library compiled with -fsanitize=fuzzer-no-link,address,undefined.
# Seeds are written by the library itself (tests/fuzz/make_seeds.c).
#   make fuzz FUZZ_SECONDS=600   each harness for that long (new corpus kept in
#                                build/fuzz/corpus/NAME, crashes in build/fuzz/;
#                                the committed tests/fuzz/corpus/NAME is read too)
#   make fuzz FUZZ_SECONDS=7200 FUZZ_RUNS=10000000   the release run: 10^7
#                                executions per loader (whichever limit first)
#   make fuzz FUZZ_NAMES=png     one harness only
#   make fuzz-corpus             merge build/fuzz/corpus into tests/fuzz/corpus
#   make fuzz-smoke              a few seconds each (part of make test)
FUZZ_SECONDS ?= 60
# -runs: a run stops at this many executions if that comes first (-1: no limit).
FUZZ_RUNS    ?= -1
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_NAMES   ?= module_ckpt trainer_ckpt safetensors idx cifar png jpeg dicom tiff
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_FLAGS   := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-corpus
fuzz-build: $(STATIC) $(IMG_STATIC)
	$(MAKE) CC=$(FUZZ_CC) SAN=1 BUILD=$(FUZZ_BUILD)/obj OUT=$(FUZZ_BUILD)/lib \
	        CFLAGS=-fsanitize=fuzzer-no-link $(FUZZ_BUILD)/lib/libsimclr.a $(FUZZ_BUILD)/lib/libsimclr_image.a
	$(MAKE) $(FUZZ_BINS) $(FUZZ_BUILD)/make_seeds

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h tests/fuzz/fuzz_models.h $(FUZZ_BUILD)/lib/libsimclr.a
	$(FUZZ_CC) -Iinclude -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FUZZ_FLAGS) $< -o $@ \
	      $(FUZZ_BUILD)/lib/libsimclr.a $(LIBS)

# The image decoders' harnesses link the companion (and libpng, libjpeg).
$(FUZZ_BUILD)/fuzz_png $(FUZZ_BUILD)/fuzz_jpeg: $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_image.h tests/fuzz/fuzz_util.h \
                                            $(FUZZ_BUILD)/lib/libsimclr_image.a $(FUZZ_BUILD)/lib/libsimclr.a
	$(FUZZ_CC) -Iinclude -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FUZZ_FLAGS) $< -o $@ \
	      $(FUZZ_BUILD)/lib/libsimclr_image.a $(FUZZ_BUILD)/lib/libsimclr.a $(IMG_LIBS) $(LIBS)

# The medical decoders' harnesses (issue 28) link the companion built the
# same way (its C++ file with clang++), DCMTK, OpenJPEG and libtiff; they are
# linked by clang++ (C++'s runtime, UBSan's C++ part).
FUZZ_CXX ?= clang++
ifneq ($(OUT),$(FUZZ_BUILD)/lib)
.PHONY: fuzz-medical-force
$(FUZZ_BUILD)/lib/libsimclr_medical.a: fuzz-medical-force
	$(MAKE) CC=$(FUZZ_CC) CXX=$(FUZZ_CXX) SAN=1 BUILD=$(FUZZ_BUILD)/obj OUT=$(FUZZ_BUILD)/lib \
	        CFLAGS=-fsanitize=fuzzer-no-link $@
endif
$(FUZZ_BUILD)/fuzz_dicom $(FUZZ_BUILD)/fuzz_tiff: $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_medical.h \
                                             tests/fuzz/fuzz_util.h $(FUZZ_BUILD)/lib/libsimclr_medical.a $(FUZZ_BUILD)/lib/libsimclr.a
	$(FUZZ_CC) -Iinclude -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(FUZZ_FLAGS) -c $< -o $@.o
	$(FUZZ_CXX) $(FUZZ_FLAGS) $@.o -o $@ $(FUZZ_BUILD)/lib/libsimclr_medical.a $(FUZZ_BUILD)/lib/libsimclr.a \
	      $(MED_LIBS) $(LIBS)

$(FUZZ_BUILD)/make_seeds: tests/fuzz/make_seeds.c tests/fuzz/fuzz_util.h tests/fuzz/fuzz_models.h $(STATIC) $(IMG_STATIC)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(TEST_CFLAGS) $< -o $@ $(IMG_STATIC) $(STATIC) $(IMG_LIBS) $(LIBS)

fuzz: fuzz-build
	@rm -rf $(FUZZ_BUILD)/seeds && $(FUZZ_BUILD)/make_seeds $(FUZZ_BUILD)/seeds
	@for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	  committed=; [ -d tests/fuzz/corpus/$$n ] && committed=tests/fuzz/corpus/$$n; \
	  if ! $(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) -print_final_stats=1 -rss_limit_mb=2048 \
	       -artifact_prefix=$(FUZZ_BUILD)/crash_$$n- $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/seeds/$$n $$committed \
	       > $(FUZZ_BUILD)/fuzz_$$n.log 2>&1; then \
	    tail -60 $(FUZZ_BUILD)/fuzz_$$n.log; echo "fuzz: $$n FAILED (log: $(FUZZ_BUILD)/fuzz_$$n.log)"; exit 1; fi; \
	  echo "fuzz: $$n: $$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_BUILD)/fuzz_$$n.log) executions in" \
	       "$$(sed -n 's/^stat::.*//;s/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' $(FUZZ_BUILD)/fuzz_$$n.log | tail -1) s" \
	       "(limits $(FUZZ_SECONDS) s, $(FUZZ_RUNS) runs), corpus $$(ls $(FUZZ_BUILD)/corpus/$$n | wc -l) files, no finding"; \
	done

# The committed corpus (tests/fuzz/corpus/NAME, read by every make fuzz):
# this run's corpus merged into it, keeping only inputs that add coverage.
fuzz-corpus: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	  mkdir -p tests/fuzz/corpus/$$n; \
	  $(FUZZ_BUILD)/fuzz_$$n -merge=1 -rss_limit_mb=2048 tests/fuzz/corpus/$$n $(FUZZ_BUILD)/corpus/$$n \
	       > $(FUZZ_BUILD)/merge_$$n.log 2>&1 || { tail -20 $(FUZZ_BUILD)/merge_$$n.log; exit 1; }; \
	  echo "fuzz-corpus: $$n: $$(ls tests/fuzz/corpus/$$n | wc -l) files"; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=3
# ---- end fuzzing -------------------------------------------------------------

# ---- ThreadSanitizer (issue 15) ----------------------------------------------
# The tests that use threads, built with clang -fsanitize=thread: many
# contexts in many threads, pools created and destroyed over and over,
# thread-local errors, image folders decoding on the pool and prefetching on
# threads of their own. OpenBLAS itself is not instrumented (the cpu backend
# holds it at one thread, so its calls stay on the calling thread).
TSAN_TESTS := test_threads test_rng_pool test_image_decode
.PHONY: tsan
tsan:
	$(MAKE) CC=clang BUILD=build/tsan OUT=build/tsan/lib OPT="-O1 -g" \
	        CFLAGS="-fsanitize=thread" $(TSAN_TESTS:%=build/tsan/tests/%)
	@for t in $(TSAN_TESTS); do \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66" build/tsan/tests/$$t || { echo "tsan: $$t FAILED"; exit 1; }; \
	done; echo "tsan: $(words $(TSAN_TESTS)) programs ($(TSAN_TESTS)) clean under ThreadSanitizer"
# ---- end ThreadSanitizer -----------------------------------------------------

# ---- ABI check (issue 15) ---------------------------------------------------
# abidiff of the built shared object against the committed abidw dump of
# every release (tests/abi/libsimclr-X.Y.Z.abi: 0.1.0, 0.2.0, ...); fails on
# a removed or changed function, type or enum value and on a symbol that
# changed version node. The self-test makes sure each such change really
# fails the check. `make abi-baseline` (re)writes the dump of this version,
# tests/abi/libsimclr-$(VERSION).abi, with the same abidw flags: run it when
# a release is cut (and commit the file).
ABI_BASELINES = $(sort $(wildcard tests/abi/libsimclr-*.abi))
.PHONY: abi-check abi-baseline
abi-check: $(SHARED)
	@sh tests/abi/test_abi_check.sh
	@for b in $(ABI_BASELINES); do sh tools/abi_check.sh $(SHARED) $$b || exit 1; done
abi-baseline: $(SHARED)
	@sh tools/abi_check.sh --dump $(SHARED) tests/abi/libsimclr-$(VERSION).abi
# ---- end ABI check -----------------------------------------------------------

# ---- issue 15: what make test runs beyond the unit programs ------------------
# (test_faults, test_kill_save, test_threads and test_cancel_log are unit
# programs: unit and sanitize run them.)
.PHONY: robustness
robustness:
	$(MAKE) abi-check
	$(MAKE) tsan
	$(MAKE) fuzz-smoke
# ---- end issue 15 --------------------------------------------------------------

-include $(DEPS) $(IMG_OBJS:.o=.d) $(MED_OBJS:.o=.d)
