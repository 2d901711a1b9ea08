# Convenience targets; cargo does the work.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin

.PHONY: all test demo install uninstall

all:
	cargo build --release --locked

test:
	./scripts/test.sh

demo:
	./scripts/demo.sh

# Installs rvsd, rvsadm and rvs, and `ipvsadm` as a symlink to rvsadm so that
# existing scripts (and keepalived) run unchanged. Refuses to replace a real
# ipvsadm binary.
install: all
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 target/release/rvsd target/release/rvsadm target/release/rvs $(DESTDIR)$(SBINDIR)/
	@if [ -e $(DESTDIR)$(SBINDIR)/ipvsadm ] && [ ! -L $(DESTDIR)$(SBINDIR)/ipvsadm ]; then \
		echo "$(DESTDIR)$(SBINDIR)/ipvsadm exists and is not a link: left alone"; \
	else \
		ln -sfn rvsadm $(DESTDIR)$(SBINDIR)/ipvsadm; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/rvsd $(DESTDIR)$(SBINDIR)/rvs
	@if [ -L $(DESTDIR)$(SBINDIR)/ipvsadm ]; then rm -f $(DESTDIR)$(SBINDIR)/ipvsadm; fi
	rm -f $(DESTDIR)$(SBINDIR)/rvsadm
