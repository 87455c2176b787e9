# nooelint: oelint.var.bbclassextend - a terminal application: no native or nativesdk variant
SUMMARY = "Kassa: a contactless EMV payment terminal"
DESCRIPTION = "Takes contactless card payments on a Raspberry-Pi-class board with an NFC \
               reader, a receipt printer and a touchscreen, and sends them to the acquirer \
               over mutual TLS."
HOMEPAGE = "https://github.com/kassa-pos/kassa"
BUGTRACKER = "https://github.com/kassa-pos/kassa/issues"
SECTION = "console/utils"
LICENSE = "Apache-2.0 | MIT"
LIC_FILES_CHKSUM = "file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57 \
                    file://LICENSE-MIT;md5=fd0d387e37553c956313ad0ea9e8e046"
CVE_PRODUCT = "kassa"

DEPENDS += "fontconfig libinput libxkbcommon pcsc-lite udev"

PV .= "+git"

SRC_URI = "git://github.com/kassa-pos/kassa.git;protocol=https;branch=main \
           file://kassa.service \
           file://kassa.toml \
           file://99-kassa.rules \
           file://kassa-selftest \
           file://kassa-mark-good.service \
           file://kassa-update \
           file://kassa-update.service \
           file://kassa-update.timer \
           "
# The release to build; after changing it, run scripts/yocto-crates on that commit.
SRCREV = "95bf4bff61cef476f313cbc26bdba47b2a16b845"

S = "${UNPACKDIR}/git"

inherit cargo cargo-update-recipe-crates systemd useradd

require ${BPN}-crates.inc

# The device build of the kassa package: Slint on DRM/KMS with the software renderer and
# libinput, the PN532 on UART/SPI/I2C, GPIO lights, PC/SC; no emulator window.
CARGO_SRC_DIR = "terminal-app"
PACKAGECONFIG ??= "device"
PACKAGECONFIG[device] = "--no-default-features --features device"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/kassa.service ${D}${systemd_system_unitdir}/kassa.service
    install -d ${D}${sysconfdir}/kassa
    install -m 0640 ${UNPACKDIR}/kassa.toml ${D}${sysconfdir}/kassa/kassa.toml
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${UNPACKDIR}/99-kassa.rules ${D}${nonarch_base_libdir}/udev/rules.d/99-kassa.rules
    install -d ${D}${libexecdir}
    install -m 0755 ${UNPACKDIR}/kassa-selftest ${D}${libexecdir}/kassa-selftest
    install -m 0644 ${UNPACKDIR}/kassa-mark-good.service ${D}${systemd_system_unitdir}/kassa-mark-good.service
    install -m 0755 ${UNPACKDIR}/kassa-update ${D}${libexecdir}/kassa-update
    install -m 0644 ${UNPACKDIR}/kassa-update.service ${D}${systemd_system_unitdir}/kassa-update.service
    install -m 0644 ${UNPACKDIR}/kassa-update.timer ${D}${systemd_system_unitdir}/kassa-update.timer
}

# kassa-update: on an A/B (RAUC) image, the self-test payment that marks a new slot good.
PACKAGES =+ "${PN}-update"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio; --system spi; --system i2c"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/kassa --no-create-home \
                       --shell /sbin/nologin \
                       --groups dialout,video,input,render,gpio,spi,i2c,lp kassa"

SYSTEMD_PACKAGES = "${PN} ${PN}-update"
SYSTEMD_SERVICE:${PN} = "kassa.service"
SYSTEMD_SERVICE:${PN}-update = "kassa-mark-good.service kassa-update.timer"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

CONFFILES:${PN} = "${sysconfdir}/kassa/kassa.toml"
FILES:${PN} += "${systemd_system_unitdir}/kassa.service \
                ${nonarch_base_libdir}/udev/rules.d/99-kassa.rules"
FILES:${PN}-update += "${libexecdir}/kassa-selftest \
                       ${libexecdir}/kassa-update \
                       ${systemd_system_unitdir}/kassa-mark-good.service \
                       ${systemd_system_unitdir}/kassa-update.service \
                       ${systemd_system_unitdir}/kassa-update.timer"

RDEPENDS:${PN} += "fontconfig fontconfig-utils liberation-fonts pcsc-lite"
RDEPENDS:${PN}-update += "${PN} rauc util-linux-runuser"
