"""PPP authentication: the verifier interface (:mod:`.base`), PAP (:mod:`.pap`, RFC 1334),
CHAP-MD5 and MS-CHAPv2 (:mod:`.chap`, RFC 1994 and RFC 2759; hashes in :mod:`.mschapv2`)."""
