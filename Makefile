# make install [PREFIX=/usr/local] [DESTDIR=]   release build, binary, systemd unit, docs, example config
# make uninstall                                 removes them; keeps /etc/turnkeeper and /var/lib/turnkeeper
# make test                                      what CI runs (.ci/run)
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: install uninstall test
install:
	scripts/install.sh --prefix "$(PREFIX)" --destdir "$(DESTDIR)"

uninstall:
	scripts/install.sh --prefix "$(PREFIX)" --destdir "$(DESTDIR)" --uninstall

test:
	scripts/test.sh
