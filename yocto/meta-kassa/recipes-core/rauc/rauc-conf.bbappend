# Kassa's A/B slot layout (files/system.conf), for the kassa distro. The keyring (the
# operator's update CA) comes from RAUC_KEYRING_FILE, set in the operator's own layer or
# local.conf (docs/FLEET.md).
FILESEXTRAPATHS:prepend:kassa := "${THISDIR}/files:"

do_install:append:kassa() {
    sed -i -e 's|@@RAUC_COMPATIBLE@@|kassa-${MACHINE}|' \
           -e 's|@@RAUC_KEYRING@@|${@os.path.basename(d.getVar('RAUC_KEYRING_FILE') or 'ca.cert.pem')}|' \
           ${D}${sysconfdir}/rauc/system.conf
}
