"""Sizes of one information element per IEC 60870-5-101/104 ASDU type.

The ASDU carries no per-object length, so locating the information object
addresses after the first one depends on knowing each type's element size
(IEC 60870-5-101 section 7.3, without the 3-byte address). Time tags count:
CP24Time2a is 3 bytes, CP56Time2a 7.
"""

from __future__ import annotations

CP24 = 3
CP56 = 7

ELEMENT_SIZES: dict[int, int] = {
    1: 1,  # M_SP_NA_1 single point
    2: 1 + CP24,
    3: 1,  # M_DP_NA_1 double point
    4: 1 + CP24,
    5: 2,  # M_ST_NA_1 step position
    6: 2 + CP24,
    7: 5,  # M_BO_NA_1 bitstring of 32 bits
    8: 5 + CP24,
    9: 3,  # M_ME_NA_1 normalised value
    10: 3 + CP24,
    11: 3,  # M_ME_NB_1 scaled value
    12: 3 + CP24,
    13: 5,  # M_ME_NC_1 short float
    14: 5 + CP24,
    15: 5,  # M_IT_NA_1 integrated totals
    16: 5 + CP24,
    17: 3 + CP24,  # M_EP_TA_1 protection event
    18: 4 + CP24,
    19: 4 + CP24,
    20: 5,  # M_PS_NA_1 packed single points with status change detection
    21: 2,  # M_ME_ND_1 normalised value without quality
    30: 1 + CP56,
    31: 1 + CP56,
    32: 2 + CP56,
    33: 5 + CP56,
    34: 3 + CP56,
    35: 3 + CP56,
    36: 5 + CP56,
    37: 5 + CP56,
    38: 3 + CP56,
    39: 4 + CP56,
    40: 4 + CP56,
    45: 1,  # C_SC_NA_1 single command
    46: 1,  # C_DC_NA_1 double command
    47: 1,  # C_RC_NA_1 regulating step command
    48: 3,  # C_SE_NA_1 set point, normalised
    49: 3,  # C_SE_NB_1 set point, scaled
    50: 5,  # C_SE_NC_1 set point, short float
    51: 4,  # C_BO_NA_1 bitstring command
    58: 1 + CP56,
    59: 1 + CP56,
    60: 1 + CP56,
    61: 3 + CP56,
    62: 3 + CP56,
    63: 5 + CP56,
    64: 4 + CP56,
    70: 1,  # M_EI_NA_1 end of initialisation
    100: 1,  # C_IC_NA_1 interrogation
    101: 1,  # C_CI_NA_1 counter interrogation
    102: 0,  # C_RD_NA_1 read
    103: CP56,  # C_CS_NA_1 clock synchronisation
    104: 2,  # C_TS_NA_1 test command
    105: 1,  # C_RP_NA_1 reset process
    106: 2,  # C_CD_NA_1 delay acquisition
    107: 2 + CP56,  # C_TS_TA_1 test command with time tag
    110: 3,  # P_ME_NA_1 parameter, normalised
    111: 3,  # P_ME_NB_1 parameter, scaled
    112: 5,  # P_ME_NC_1 parameter, short float
    113: 1,  # P_AC_NA_1 parameter activation
    120: 6,  # F_FR_NA_1 file ready
    121: 7,  # F_SR_NA_1 section ready
    122: 4,  # F_SC_NA_1 call directory / select file / call file / call section
    123: 5,  # F_LS_NA_1 last section / last segment
    124: 4,  # F_AF_NA_1 ack file / ack section
    126: 6 + CP56,  # F_DR_TA_1 directory
    127: 2 + CP56 + CP56,  # F_SC_NB_1 query log
}

# F_SG_NA_1 (file segment) carries its own length byte, so a per-type size does not apply.
VARIABLE_SIZE_TYPES = frozenset({125})
