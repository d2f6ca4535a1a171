# make install [PREFIX=/usr/local] [DESTDIR=]   release build, binary, systemd unit, docs, example config
# make uninstall                                 removes them; keeps /etc/turnkeeper and /var/lib/turnkeeper
# make deb                                       dist/turnkeeper_<version>_<arch>.deb (scripts/deb.sh)
# make test                                      what CI runs (.ci/run)
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: install uninstall deb test
install:
	scripts/install.sh --prefix "$(PREFIX)" --destdir "$(DESTDIR)"

uninstall:
	scripts/install.sh --prefix "$(PREFIX)" --destdir "$(DESTDIR)" --uninstall

deb:
	scripts/deb.sh

test:
	scripts/test.sh
