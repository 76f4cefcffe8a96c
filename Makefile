# profgate: the two commands of the Quick start, and the rest of the developer loop.
#   make demo      install what is missing, build, run randomstring + profgate (Ctrl-C stops)
#   make test      install what is missing, build, run every ctest test (unit + integration + conformance)
#   make install   cmake --install (PREFIX=/usr/local by default)
#   make test-asan / make test-tsan    the same tests under sanitizers, own build dirs
BUILD ?= build
JOBS ?= $(shell nproc)
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
PREFIX ?=
ifdef CI
CMAKE_FLAGS += -DPG_WERROR=ON
endif

.PHONY: all deps build demo test install test-asan test-tsan fuzz clean

all: build

deps:
	@scripts/install-deps.sh all
	@scripts/install-ui-deps.sh viewer || echo "warning: speedscope (npm) could not be installed: the viewer page will say how to install it; everything else works"

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_FLAGS)

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

test-asan:
	$(MAKE) test BUILD=build-asan BUILD_TYPE=Debug CMAKE_FLAGS="$(CMAKE_FLAGS) -DPG_SANITIZE=address,undefined"

test-tsan:
	$(MAKE) test BUILD=build-tsan BUILD_TYPE=Debug CMAKE_FLAGS="$(CMAKE_FLAGS) -DPG_SANITIZE=thread"

SECONDS ?= 60
fuzz:
	@scripts/install-deps.sh fuzz
	PG_WERROR=$(if $(CI),ON,OFF) scripts/fuzz.sh $(SECONDS)

clean:
	rm -rf build build-asan build-tsan build-release
