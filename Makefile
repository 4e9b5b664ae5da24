# The two commands of the README: `make run` and `make test`. Both install what is missing first.
NPM ?= npm

.PHONY: all deps build run test typecheck bench clean deb install

all: build

# npm ci only when the lock file changed since the last install.
node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

build: deps
	$(NPM) run build

run: build
	@mkdir -p var
	node --max-semi-space-size=1 dist/cli.js serve --config config/relaybox.example.yaml

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
