# The A/B boot script (files/boot.cmd.in) in place of meta-raspberrypi's single-root one.
FILESEXTRAPATHS:prepend:kassa := "${THISDIR}/files:"
