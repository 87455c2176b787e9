# nooelint: oelint.var.bbclassextend,oelint.var.mandatoryvar.SRC_URI - a bundle is for the target only, and is built from kassa-image: it fetches nothing
SUMMARY = "Kassa software update"
DESCRIPTION = "A signed RAUC bundle holding the Kassa root file system, for the terminal's \
               inactive A/B slot."
HOMEPAGE = "https://github.com/kassa-pos/kassa"
BUGTRACKER = "https://github.com/kassa-pos/kassa/issues"
SECTION = "images"
LICENSE = "MIT"
# nooelint: oelint.var.licenseremotefile - the bundle has no sources of its own
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"
CVE_PRODUCT = "kassa"

inherit bundle

# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_BUNDLE_COMPATIBLE = "kassa-${MACHINE}"
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_BUNDLE_DESCRIPTION = "Kassa terminal image"
# verity: the terminal streams and checks the bundle block by block.
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_BUNDLE_FORMAT = "verity"
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_BUNDLE_SLOTS = "rootfs"
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_SLOT_rootfs = "kassa-image"
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_SLOT_rootfs[fstype] = "ext4"

# The operator's signing key and certificate, chained to the CA in the terminals' keyring:
# set them in local.conf or the operator's own layer, never in this one (docs/FLEET.md).
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_KEY_FILE ??= ""
# nooelint: oelint.vars.mispell.unknown - meta-rauc's bundle class
RAUC_CERT_FILE ??= ""
