# Convenience targets; cargo does the work.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
# Where cargo builds (CARGO_TARGET_DIR, build.target-dir), as cargo says.
TARGET_DIR := $(shell . scripts/lib/target-dir.sh && target_dir)
RELEASE := $(TARGET_DIR)/release

.PHONY: all test demo deb install uninstall

all:
	cargo build --release --locked

test:
	./scripts/test.sh

demo:
	./scripts/demo.sh

# The Debian package: $(TARGET_DIR)/debian/rvs_*.deb (see scripts/deb.sh).
deb:
	./scripts/deb.sh

# From source: installs rvsd, rvsadm and rvs, the man pages, and `ipvsadm`,
# `ipvsadm-save` and `ipvsadm-restore` as symlinks to rvsadm so that
# existing scripts (and keepalived's) run unchanged. Refuses to replace a
# real ipvsadm binary. (ldirectord looks in /sbin and /usr/sbin only: the
# Debian package, or PREFIX=/usr, serves it.)
install: all
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 $(RELEASE)/rvsd $(RELEASE)/rvsadm $(RELEASE)/rvs $(DESTDIR)$(SBINDIR)/
	@for n in ipvsadm ipvsadm-save ipvsadm-restore; do \
		if [ -e $(DESTDIR)$(SBINDIR)/$$n ] && [ ! -L $(DESTDIR)$(SBINDIR)/$$n ]; then \
			echo "$(DESTDIR)$(SBINDIR)/$$n exists and is not a link: left alone"; \
		else \
			ln -sfn rvsadm $(DESTDIR)$(SBINDIR)/$$n; \
		fi; \
	done
	python3 scripts/manpages.py --bin $(RELEASE) --out $(TARGET_DIR)/man
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 $(TARGET_DIR)/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(TARGET_DIR)/man/*.5 $(DESTDIR)$(MANDIR)/man5/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/rvsd $(DESTDIR)$(SBINDIR)/rvs
	@for n in ipvsadm ipvsadm-save ipvsadm-restore; do \
		if [ -L $(DESTDIR)$(SBINDIR)/$$n ]; then rm -f $(DESTDIR)$(SBINDIR)/$$n; fi; \
	done
	rm -f $(DESTDIR)$(SBINDIR)/rvsadm
	rm -f $(DESTDIR)$(MANDIR)/man8/rvsd.8 $(DESTDIR)$(MANDIR)/man8/rvsadm.8 \
		$(DESTDIR)$(MANDIR)/man8/rvs.8 $(DESTDIR)$(MANDIR)/man5/rvs-rules.5
