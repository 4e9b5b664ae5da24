# The two commands of the README: `make run` and `make test`. Both install what is missing first.
NPM ?= npm

.PHONY: all deps build run test typecheck bench clean deb install image image-test deb-test-armhf

all: build

# npm ci only when the lock file changed since the last install.
node_modules/.installed: package.json package-lock.json
	@echo 'npm ci: installing the dependencies. better-sqlite3 compiles SQLite from C where no prebuilt'
	@echo 'binary fits this machine (an ARM board, a Node.js newer than its release): several minutes,'
	@echo 'longer on a Raspberry Pi, with no output until it is done.'
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

# tsc only when a source changed: it takes most of a minute, and `make run` is run often. A
# failed build removes dist/cli.js (.DELETE_ON_ERROR), so the next make tries again.
SOURCES := $(shell find src -type f) tsconfig.json
dist/cli.js: node_modules/.installed $(SOURCES)
	$(NPM) run build
	@touch $@

.DELETE_ON_ERROR:

build: dist/cli.js

run: build
	@mkdir -p var
	MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=1 dist/cli.js serve --config config/relaybox.example.yaml

test: build
	$(NPM) run typecheck
	$(NPM) test

bench: build
	$(NPM) run bench

clean:
	rm -rf dist var .bench

# The appliance: a .deb for this machine's architecture into var/deb/, carrying its own Node.js
# runtime; ARCH=arm64 or ARCH=armhf cross-builds one for a Pi (see deploy/README.md).
deb: build
	deploy/build-deb.sh $(if $(ARCH),--arch $(ARCH)) var/deb

# Installs the built tree on this machine in the .deb's layout (root; idempotent; never touches
# an existing /etc/relaybox/relaybox.yaml). `make deps` installs the npm dependencies instead.
install: build
	deploy/install.sh

# The card image for a Raspberry Pi (3, 4, 400, Zero 2 W): Debian 12 arm64 with relaybox, into
# var/image/relaybox-<version>-arm64.img.xz; see deploy/image/README.md. Needs root.
VERSION := $(shell node -p 'require("./package.json").version')
image: build
	$(MAKE) deb ARCH=arm64
	deploy/image/build-image.sh var/deb/relaybox_$(VERSION)-1_arm64.deb var/image

# The armhf package in a Debian 12 armhf root under qemu-user, as make test does for arm64: by
# hand, since a cold run costs about 7 minutes more (deploy/README.md).
deb-test-armhf: build
	RELAYBOX_PACKAGE_ARM=armhf npx vitest run test/package-arm.test.ts

# Boots the image under QEMU and checks it from the host (test/image/): ~20 minutes.
image-test: image
	npx vitest run --config vitest.image.config.ts
