# The two commands of the README: `make run` and `make test`. Both install what is missing first.
NPM ?= npm

.PHONY: all install build run test typecheck bench clean

all: build

# npm ci only when the lock file changed since the last install.
node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	$(NPM) run build

run: build
	@mkdir -p var
	node dist/cli.js serve --config config/relaybox.example.yaml

test: build
	$(NPM) run typecheck
	$(NPM) test

bench: build
	$(NPM) run bench

clean:
	rm -rf dist var .bench
