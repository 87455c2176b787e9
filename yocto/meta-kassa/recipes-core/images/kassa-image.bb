SUMMARY = "Kassa terminal image"
DESCRIPTION = "Boots a Raspberry Pi straight to the Kassa payment screen: systemd starts \
               kassa on DRM/KMS, the root file system is read-only and the journal lives on \
               its own data partition."
HOMEPAGE = "https://github.com/kassa-pos/kassa"
BUGTRACKER = "https://github.com/kassa-pos/kassa/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "kassa"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_INSTALL:append = " ccid fontconfig kassa kernel-modules pcsc-lite"
# A/B updates: RAUC, the self-test that marks a new slot good, and each slot's own kernel in
# /boot (U-Boot loads it from the slot it boots).
IMAGE_INSTALL:append = " kassa-update kernel-image kernel-devicetree libubootenv-bin rauc"

# The screen and the receipt in the cardholder's language: DejaVu for Latin, Greek and
# Cyrillic; Source Han Sans (meta-oe's packaging of the typeface Google ships as Noto Sans
# CJK) for Chinese, Japanese and Korean; TLWG for Thai.
IMAGE_INSTALL:append = " \
    source-han-sans-cn-fonts \
    source-han-sans-jp-fonts \
    source-han-sans-kr-fonts \
    source-han-sans-tw-fonts \
    ttf-dejavu-sans \
    ttf-dejavu-sans-mono \
    ttf-tlwg \
"

# The journal, the device key and the PKI live on their own partition, mounted at
# /var/lib/kassa: the root file system stays read-only. Two root partitions (A and B) for
# updates, and RAUC's state on its own small partition.
WKS_FILE = "kassa-sdimage.wks"
IMAGE_FSTYPES = "wic.bz2 wic.bmap"
