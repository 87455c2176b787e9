# Where RAUC (through fw_printenv/fw_setenv) finds U-Boot's environment.
FILESEXTRAPATHS:prepend:kassa := "${THISDIR}/files:"

SRC_URI:append:kassa = " file://fw_env.config"

do_install:append:kassa() {
    install -d ${D}${sysconfdir}
    install -m 0644 ${UNPACKDIR}/fw_env.config ${D}${sysconfdir}/fw_env.config
}
