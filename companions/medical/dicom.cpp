/* DICOM through DCMTK: the companion's one C++ file. DCMTK's dcmdata parses
 * the file (from a buffer, or from the path after medical.c's checks) and
 * its registered decoders (dcmdata's RLE, dcmjpeg's IJG 8/12/16-bit JPEG,
 * dcmjpls' CharLS JPEG-LS) decompress one frame at a time; JPEG 2000, which
 * DCMTK's free toolkit lacks, goes to OpenJPEG (j2k_frame). This file checks
 * the declared geometry before anything large is allocated, refuses what it
 * cannot return faithfully, and turns the stored samples of the frame into
 * physical values. Nothing here may throw into C: the entry point catches
 * everything. Messages name the file and the structure only -- never an
 * attribute value (names, IDs, UIDs).
 *
 * (GDCM was the first choice; Debian builds it with assert() enabled --
 * hundreds of them on the image path, e.g. a file with a Frame Increment
 * Pointer but no Number of Frames aborts the process --, which a library
 * fed untrusted files cannot accept.) */
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcvr.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <openjpeg.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

namespace {

std::once_flag setup_once;

/* Once per process: DCMTK's JPEG and JPEG-LS decoders registered (a global
 * registry; RLE is decoded here, rle_frame), and
 * its logger (warnings to stderr by default) switched off. dcmjpeg returns
 * the JPEG's components as coded (EDC_never): whether they are YCbCr is
 * decided here (jpeg_is_ycbcr), and converted as libjpeg would. */
void setup_dcmtk()
{
    std::call_once(setup_once, [] {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        DJDecoderRegistration::registerCodecs(EDC_never);
        DJLSDecoderRegistration::registerCodecs();
    });
}

/* An attribute's whole value without trailing spaces and NULs, "" when
 * absent. */
std::string string_of(DcmItem *item, const DcmTagKey &tag)
{
    OFString s;
    DcmElement *el = nullptr;
    /* a text value of at most 1 KB (UIDs, IDs, codes): an element of another
     * VR would be rendered as text, OW as hex words (fuzz_dicom: 2 GB) */
    if (!item || item->findAndGetElement(tag, el).bad() || !el || !el->isaString() || el->getLength() > 1024)
        return std::string();
    if (el->getOFStringArray(s, OFFalse).bad()) return std::string();
    std::string out(s.c_str(), s.length());
    size_t nul = out.find('\0');
    if (nul != std::string::npos) out.resize(nul);
    while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
    return out;
}

/* The first value of a DS/IS attribute (DCMTK parses it locale-free);
 * false when absent, empty or not finite. */
bool number_of(DcmItem *item, const DcmTagKey &tag, double *out)
{
    Float64 v;
    if (!item || item->findAndGetFloat64(tag, v, 0).bad() || !std::isfinite(v)) return false;
    *out = v;
    return true;
}

/* Rescale or window from an enhanced file's functional groups: the
 * per-frame group of `frame`, then the shared one; each holds the macro
 * sequence `macro`, whose first item has the two attributes. */
bool functional_pair(DcmItem *ds, long frame, const DcmTagKey &macro, const DcmTagKey &ta, const DcmTagKey &tb,
                     double *a, double *b, bool need_both)
{
    const DcmTagKey groups[2] = {DCM_PerFrameFunctionalGroupsSequence, DCM_SharedFunctionalGroupsSequence};
    for (int g = 0; g < 2; g++) {
        DcmItem *grp = nullptr, *m = nullptr;
        if (ds->findAndGetSequenceItem(groups[g], grp, g == 0 ? frame : 0).bad() || !grp) continue;
        if (grp->findAndGetSequenceItem(macro, m, 0).bad() || !m) continue;
        double va = 0, vb = 0;
        bool ha = number_of(m, ta, &va), hb = number_of(m, tb, &vb);
        if (need_both ? (ha && hb) : (ha || hb)) {
            if (ha) *a = va;
            if (hb) *b = vb;
            return true;
        }
    }
    return false;
}

char *dup_string(const std::string &s)
{
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

/* A UID as printable text (digits and dots, at most 64), for messages. */
std::string printable_uid(const std::string &uid)
{
    std::string out;
    for (char ch : uid)
        if (out.size() < 64 && ((ch >= '0' && ch <= '9') || ch == '.')) out += ch;
    return out.empty() ? std::string("(none)") : out;
}

bool is_jpeg_lossy(E_TransferSyntax t) { return t == EXS_JPEGProcess1 || t == EXS_JPEGProcess2_4; }

bool is_j2k(E_TransferSyntax t) { return t == EXS_JPEG2000LosslessOnly || t == EXS_JPEG2000; }

bool is_native(E_TransferSyntax t)
{
    return t == EXS_LittleEndianImplicit || t == EXS_LittleEndianExplicit || t == EXS_BigEndianExplicit ||
           t == EXS_DeflatedLittleEndianExplicit;
}

bool supported(E_TransferSyntax t)
{
    switch (t) {
    case EXS_LittleEndianImplicit:
    case EXS_LittleEndianExplicit:
    case EXS_BigEndianExplicit:
    case EXS_DeflatedLittleEndianExplicit:
    case EXS_RLELossless:
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
    case EXS_JPEGProcess14:
    case EXS_JPEGProcess14SV1:
    case EXS_JPEGLSLossless:
    case EXS_JPEGLSLossy:
    case EXS_JPEG2000LosslessOnly:
    case EXS_JPEG2000:
        return true;
    default:
        return false;
    }
}

/* Frees a buffer on every way out. */
struct Freer {
    void *p;
    ~Freer() { std::free(p); }
};

/* ---- JPEG 2000 through OpenJPEG ---- */

struct J2kSource {
    const unsigned char *data;
    size_t size, pos;
};

OPJ_SIZE_T j2k_read(void *buf, OPJ_SIZE_T n, void *user)
{
    J2kSource *s = static_cast<J2kSource *>(user);
    if (s->pos >= s->size) return static_cast<OPJ_SIZE_T>(-1);
    size_t k = std::min(static_cast<size_t>(n), s->size - s->pos);
    std::memcpy(buf, s->data + s->pos, k);
    s->pos += k;
    return k;
}

OPJ_OFF_T j2k_skip(OPJ_OFF_T n, void *user)
{
    J2kSource *s = static_cast<J2kSource *>(user);
    if (n < 0 ? static_cast<size_t>(-n) > s->pos : static_cast<size_t>(n) > s->size - s->pos) return -1;
    s->pos = static_cast<size_t>(static_cast<OPJ_OFF_T>(s->pos) + n);
    return n;
}

OPJ_BOOL j2k_seek(OPJ_OFF_T n, void *user)
{
    J2kSource *s = static_cast<J2kSource *>(user);
    if (n < 0 || static_cast<size_t>(n) > s->size) return OPJ_FALSE;
    s->pos = static_cast<size_t>(n);
    return OPJ_TRUE;
}

void j2k_quiet(const char *, void *) {}

/* The fragments of frame `frame` concatenated (DCMTK finds where it starts:
 * the offset table, one fragment per frame, or the codestream's markers). */
OFCondition frame_bytes_of(DcmPixelData *pix, E_TransferSyntax ts, long frame, long frames,
                           std::vector<unsigned char> &out)
{
    DcmPixelSequence *seq = nullptr;
    OFCondition c = pix->getEncapsulatedRepresentation(ts, nullptr, seq);
    if (c.bad() || !seq) return c.bad() ? c : EC_CorruptedData;
    Uint32 first = 0, next = 0;
    c = DcmCodec::determineStartFragment(static_cast<Uint32>(frame), static_cast<Sint32>(frames), seq, first);
    if (c.bad()) return c;
    unsigned long items = seq->card();
    if (frame + 1 < frames) {
        if (DcmCodec::determineStartFragment(static_cast<Uint32>(frame + 1), static_cast<Sint32>(frames), seq, next)
                .bad())
            next = first + 1;
    } else next = static_cast<Uint32>(items);
    if (first < 1 || first >= items || next <= first || next > items) return EC_CorruptedData;
    for (Uint32 i = first; i < next; i++) {
        DcmPixelItem *item = nullptr;
        if (seq->getItem(item, i).bad() || !item) return EC_CorruptedData;
        Uint8 *p = nullptr;
        Uint32 len = item->getLength();
        if (len == 0) continue;
        if (item->getUint8Array(p).bad() || !p) return EC_CorruptedData;
        out.insert(out.end(), p, p + len);
    }
    return out.empty() ? EC_CorruptedData : EC_Normal;
}

/* Decodes one JPEG 2000 codestream (or JP2 file) into raw samples of
 * `bytes` bytes each, interleaved; "" or what went wrong. */
std::string j2k_frame(const std::vector<unsigned char> &code, long rows, long cols, int spp, int bytes,
                      unsigned char *raw)
{
    static const unsigned char jp2_sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 13, 10, 0x87, 10};
    bool jp2 = code.size() >= 12 && std::memcmp(code.data(), jp2_sig, 12) == 0;
    J2kSource src = {code.data(), code.size(), 0};
    opj_stream_t *stream = opj_stream_create(1 << 16, OPJ_TRUE);
    opj_codec_t *codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    opj_image_t *image = nullptr;
    std::string err;
    if (!stream || !codec) err = "no memory for OpenJPEG";
    if (err.empty()) {
        opj_stream_set_user_data(stream, &src, nullptr);
        opj_stream_set_user_data_length(stream, code.size());
        opj_stream_set_read_function(stream, j2k_read);
        opj_stream_set_skip_function(stream, j2k_skip);
        opj_stream_set_seek_function(stream, j2k_seek);
        opj_set_info_handler(codec, j2k_quiet, nullptr);
        opj_set_warning_handler(codec, j2k_quiet, nullptr);
        opj_set_error_handler(codec, j2k_quiet, nullptr);
        opj_dparameters_t params;
        opj_set_default_decoder_parameters(&params);
        if (!opj_setup_decoder(codec, &params) || !opj_read_header(stream, codec, &image) || !image)
            err = "OpenJPEG cannot read the JPEG 2000 header";
    }
    if (err.empty()) {
        if (static_cast<int>(image->numcomps) < spp || image->x1 <= image->x0 || image->y1 <= image->y0 ||
            static_cast<long>(image->x1 - image->x0) != cols || static_cast<long>(image->y1 - image->y0) != rows)
            err = "the JPEG 2000 codestream's size or components differ from the DICOM attributes";
    }
    if (err.empty() && (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream)))
        err = "OpenJPEG cannot decode the JPEG 2000 codestream (corrupt or truncated)";
    for (int k = 0; err.empty() && k < spp; k++) {
        const opj_image_comp_t &cp = image->comps[k];
        if (!cp.data || cp.dx != 1 || cp.dy != 1 || static_cast<long>(cp.w) != cols || static_cast<long>(cp.h) != rows ||
            cp.prec < 1 || cp.prec > static_cast<OPJ_UINT32>(bytes * 8)) {
            err = "a JPEG 2000 component is subsampled or deeper than the DICOM bits allocated";
            break;
        }
        for (long i = 0; i < rows * cols; i++) {
            uint32_t v = static_cast<uint32_t>(cp.data[i]);
            unsigned char *q = raw + (static_cast<size_t>(i) * spp + k) * bytes;
            if (bytes == 1) q[0] = static_cast<unsigned char>(v);
            else if (bytes == 2) {
                uint16_t t = static_cast<uint16_t>(v);
                std::memcpy(q, &t, 2);
            } else std::memcpy(q, &v, 4);
        }
    }
    if (image) opj_image_destroy(image);
    if (codec) opj_destroy_codec(codec);
    if (stream) opj_stream_destroy(stream);
    return err;
}

/* ---- the length scan ----
 *
 * dcmdata allocates an element's declared length before reading it, so a
 * 200-byte file declaring a 3.7 GB value allocates 3.7 GB (libFuzzer found
 * it in seconds). Before DCMTK sees a file, this walks its elements -- the
 * meta group, the data set in its transfer syntax, sequences and items of
 * defined or undefined length, encapsulated fragments, a deflated data set
 * inflated (bounded) -- and refuses any length that runs past the end of
 * its container. */

class Scan {
public:
    Scan(const simclr__med_source *src) : mem_(src->fd < 0 ? src->data : nullptr), fd_(src->fd), size_(src->size) {}
    Scan(const unsigned char *mem, uint64_t size) : mem_(mem), fd_(-1), size_(size) {}
    uint64_t size() const { return size_; }
    std::string err;

    bool read(uint64_t pos, void *out, size_t n) const
    {
        if (pos > size_ || n > size_ - pos) return false;
        if (mem_) {
            std::memcpy(out, mem_ + pos, n);
            return true;
        }
        size_t done = 0;
        while (done < n) {
            ssize_t got = pread(fd_, static_cast<char *>(out) + done, n - done, static_cast<off_t>(pos + done));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return false;
            done += static_cast<size_t>(got);
        }
        return true;
    }

    /* Elements in [pos, end); with `undefined`, up to and past an item
     * delimiter. Returns the position after, or UINT64_MAX with err set. */
    uint64_t elements(uint64_t pos, uint64_t end, bool explicit_vr, bool big, int depth, bool undefined)
    {
        if (depth > 32) return fail("sequences nested more than 32 deep");
        while (pos < end) {
            /* dcmdata makes an object of every element: a file (or an
             * inflated data set) of millions of empty ones would take
             * gigabytes */
            if (++count_ > (1 << 22)) return fail("more than 4194304 elements");
            unsigned char h[12];
            if (end - pos < 8 || !read(pos, h, 8)) return fail("truncated element header");
            uint16_t g = u16(h, big), e = u16(h + 2, big);
            if (g == 0xfffe) {
                if (e == 0xe00d && undefined) return pos + 8;
                return fail("an item tag outside a sequence");
            }
            uint64_t hdr = 8;
            uint32_t vl;
            bool sq = false, un = false;
            if (explicit_vr) {
                /* the length field's size as dcmdata decides it: an invalid
                 * or unknown VR has a 4-byte length (DcmVR, not a table) */
                char vrstr[3] = {static_cast<char>(h[4]), static_cast<char>(h[5]), 0};
                DcmVR vr(vrstr);
                if (!vr.isStandard()) {
                    char m[96];
                    std::snprintf(m, sizeof m, "element (%04x,%04x) has an invalid value representation", g, e);
                    return fail(m);
                }
                if (vr.usesExtendedLengthEncoding()) {
                    if (end - pos < 12 || !read(pos, h, 12)) return fail("truncated element header");
                    vl = u32(h + 8, big);
                    hdr = 12;
                } else vl = u16(h + 6, big);
                sq = vr.getEVR() == EVR_SQ, un = vr.getEVR() == EVR_UN;
            } else {
                vl = u32(h + 4, big);
                sq = DcmTag(g, e).getEVR() == EVR_SQ;
            }
            pos += hdr;
            bool pixel = g == 0x7fe0 && e == 0x0010;
            if (vl == 0xffffffffu) {
                /* a sequence, encapsulated pixel data, or UN holding an implicit VR little endian sequence */
                pos = items(pos, end, un ? false : explicit_vr, un ? false : big, depth + 1, pixel, true);
                if (pos == UINT64_MAX) return pos;
                continue;
            }
            if (vl > end - pos) {
                char m[160];
                std::snprintf(m, sizeof m, "element (%04x,%04x) declares %u bytes, %llu remain", g, e, vl,
                              static_cast<unsigned long long>(end - pos));
                return fail(m);
            }
            if (sq && vl > 0 && items(pos, pos + vl, explicit_vr, big, depth + 1, false, false) == UINT64_MAX)
                return UINT64_MAX;
            pos += vl;
        }
        if (undefined) return fail("an item without its delimiter");
        return pos;
    }

    /* Items of a sequence (or fragments) in [pos, end); `undefined`: up to
     * and past the sequence delimiter. */
    uint64_t items(uint64_t pos, uint64_t end, bool explicit_vr, bool big, int depth, bool fragments, bool undefined)
    {
        if (depth > 32) return fail("sequences nested more than 32 deep");
        for (;;) {
            if (!undefined && pos == end) return pos;
            unsigned char h[8];
            if (end - pos < 8 || !read(pos, h, 8)) return fail("truncated sequence");
            uint16_t g = u16(h, big), e = u16(h + 2, big);
            uint32_t vl = u32(h + 4, big);
            pos += 8;
            if (g != 0xfffe) return fail("a sequence holds something other than items");
            if (e == 0xe0dd) return pos;
            if (e != 0xe000) return fail("a sequence holds something other than items");
            if (vl == 0xffffffffu) {
                if (fragments) return fail("a pixel data fragment of undefined length");
                pos = elements(pos, end, explicit_vr, big, depth + 1, true);
                if (pos == UINT64_MAX) return pos;
                continue;
            }
            if (vl > end - pos) {
                char m[120];
                std::snprintf(m, sizeof m, "an item declares %u bytes, %llu remain", vl,
                              static_cast<unsigned long long>(end - pos));
                return fail(m);
            }
            if (!fragments && elements(pos, pos + vl, explicit_vr, big, depth + 1, false) == UINT64_MAX)
                return UINT64_MAX;
            pos += vl;
        }
    }

private:
    const unsigned char *mem_;
    int fd_;
    uint64_t size_;
    uint64_t count_ = 0;

    uint64_t fail(const char *m)
    {
        if (err.empty()) err = m;
        return UINT64_MAX;
    }
    static uint16_t u16(const unsigned char *p, bool big)
    {
        return static_cast<uint16_t>(big ? (p[0] << 8) | p[1] : p[0] | (p[1] << 8));
    }
    static uint32_t u32(const unsigned char *p, bool big)
    {
        return big ? (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]
                   : p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
    }
};

/* Inflates a deflated data set (raw deflate) into out, at most cap bytes. */
bool inflate_all(const Scan &sc, uint64_t pos, uint64_t cap, std::vector<unsigned char> &out, std::string &err)
{
    std::vector<unsigned char> in(static_cast<size_t>(sc.size() - pos));
    if (!in.empty() && !sc.read(pos, in.data(), in.size())) {
        err = "cannot read the deflated data set";
        return false;
    }
    z_stream z;
    std::memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        err = "zlib cannot start";
        return false;
    }
    z.next_in = in.data();
    z.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    unsigned char chunk[1 << 15];
    while (rc == Z_OK) {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        out.insert(out.end(), chunk, chunk + (sizeof chunk - z.avail_out));
        if (out.size() > cap) {
            inflateEnd(&z);
            err = "the deflated data set inflates beyond the pixel limit";
            return false;
        }
        if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) break; /* input ends without the stream end */
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END && rc != Z_OK) {
        err = "the deflated data set is corrupt";
        return false;
    }
    return true;
}

/* "" when every length fits, else what does not. *meta_ts: the file meta's
 * transfer syntax UID ("" without one); *xfer: without it, the encoding the
 * scan found the data set in, which DCMTK is then told to read (its own
 * guess could differ, and read a length the scan never saw); *no_meta: the
 * file is a bare data set (no preamble, no meta), which DcmFileFormat would
 * read with its own guess whatever it is told: read as a DcmDataset. */
std::string scan_lengths(const simclr__med_source *src, int64_t max_pixels, std::string *meta_ts, E_TransferSyntax *xfer,
                         bool *no_meta)
{
    *xfer = EXS_Unknown;
    *no_meta = false;
    Scan sc(src);
    unsigned char head[132];
    uint64_t pos = 0;
    if (sc.size() >= 132 && sc.read(0, head, 132) && std::memcmp(head + 128, "DICM", 4) == 0) pos = 132;
    /* the meta group: explicit VR little endian, group 0002. Stricter than
     * dcmdata, so that both end it at the same byte and agree on its
     * transfer syntax: standard VRs only, and a group length, when given,
     * must end exactly where the group's elements do (dcmdata reads by it). */
    std::string ts;
    unsigned char h[8];
    bool has_meta = false;
    uint64_t group_end = 0;
    while (sc.size() - pos >= 8 && sc.read(pos, h, 8) && (h[0] | (h[1] << 8)) == 0x0002) {
        has_meta = true;
        uint16_t e = static_cast<uint16_t>(h[2] | (h[3] << 8));
        char vrstr[3] = {static_cast<char>(h[4]), static_cast<char>(h[5]), 0};
        DcmVR vr(vrstr);
        if (!vr.isStandard()) return "a file meta element has an invalid value representation";
        if (vr.getEVR() == EVR_SQ || vr.getEVR() == EVR_UN) return "a sequence in the file meta information";
        uint64_t hdr = 8, vl = static_cast<uint64_t>(h[6] | (h[7] << 8));
        if (vr.usesExtendedLengthEncoding()) {
            unsigned char l[4];
            if (!sc.read(pos + 8, l, 4)) return "truncated file meta information";
            vl = l[0] | (uint32_t(l[1]) << 8) | (uint32_t(l[2]) << 16) | (uint32_t(l[3]) << 24);
            hdr = 12;
        }
        if (sc.size() - pos < hdr || vl > sc.size() - pos - hdr)
            return "a file meta element runs past the end of the file";
        if (e == 0x0000 && vr.getEVR() == EVR_UL && vl == 4) {
            unsigned char l[4];
            sc.read(pos + hdr, l, 4);
            group_end = pos + hdr + 4 + (l[0] | (uint32_t(l[1]) << 8) | (uint32_t(l[2]) << 16) | (uint32_t(l[3]) << 24));
        }
        if (e == 0x0010 && vr.getEVR() == EVR_UI && vl < 128) {
            char uid[129] = {0};
            sc.read(pos + hdr, uid, static_cast<size_t>(vl));
            ts = uid;
            while (!ts.empty() && (ts.back() == ' ' || ts.back() == '\0')) ts.pop_back();
        }
        pos += hdr + vl;
    }
    if (group_end && group_end != pos) return "the file meta group length disagrees with its elements";
    /* dcmdata would guess a data set's encoding after a meta group without
     * a (readable) transfer syntax, whatever it is told: refused */
    if (has_meta && ts.empty()) return "file meta information without a transfer syntax";
    *meta_ts = has_meta ? ts : std::string();
    *no_meta = !has_meta && pos == 0;
    struct Way {
        bool explicit_vr, big;
        E_TransferSyntax xfer;
    };
    std::vector<Way> ways;
    if (has_meta && !ts.empty()) {
        E_TransferSyntax t = DcmXfer(ts.c_str()).getXfer();
        if (t == EXS_Unknown || !supported(t)) return std::string(); /* refused by name, unread */
        if (ts == "1.2.840.10008.1.2") ways.push_back({false, false, EXS_Unknown});
        else if (ts == "1.2.840.10008.1.2.2") ways.push_back({true, true, EXS_Unknown});
        else if (ts == "1.2.840.10008.1.2.1.99") {
            std::vector<unsigned char> data;
            std::string err;
            uint64_t cap = static_cast<uint64_t>(std::min<int64_t>(max_pixels, INT64_MAX / 64)) * 16 + (uint64_t(1) << 24);
            if (!inflate_all(sc, pos, cap, data, err)) return err;
            Scan inflated(data.data(), data.size());
            if (inflated.elements(0, data.size(), true, false, 0, false) == UINT64_MAX) return inflated.err;
            return std::string();
        } else ways.push_back({true, false, EXS_Unknown});
    } else {
        /* no meta (or no transfer syntax in it): the first encoding that fits */
        ways = {{true, false, EXS_LittleEndianExplicit}, {false, false, EXS_LittleEndianImplicit},
                {true, true, EXS_BigEndianExplicit}};
    }
    std::string first;
    for (const Way &w : ways) {
        Scan one(src);
        if (one.elements(pos, one.size(), w.explicit_vr, w.big, 0, false) != UINT64_MAX) {
            *xfer = w.xfer;
            return std::string();
        }
        if (first.empty()) first = one.err;
    }
    return first;
}

/* ---- RLE Lossless (PS3.5 annex G), decoded here ----
 *
 * dcmdata's RLE decoder reads out of bounds on a malformed segment table
 * (fuzz_dicom: SEGV in DcmRLEDecoder::decompress), so RLE frames never reach
 * it: a 64-byte header (segment count, 15 offsets), one PackBits segment per
 * byte of each sample, most significant first. The output is interleaved,
 * little endian. "" or what is wrong. */
std::string rle_frame(const std::vector<unsigned char> &f, long rows, long cols, int spp, int bytes,
                      unsigned char *raw)
{
    auto le32 = [&](size_t o) {
        return uint32_t(f[o]) | (uint32_t(f[o + 1]) << 8) | (uint32_t(f[o + 2]) << 16) | (uint32_t(f[o + 3]) << 24);
    };
    if (f.size() < 64) return "an RLE frame shorter than its 64-byte header";
    uint32_t nseg = le32(0);
    if (nseg != static_cast<uint32_t>(spp * bytes))
        return "the RLE header's segment count differs from samples x bytes per sample";
    size_t plane = static_cast<size_t>(rows) * static_cast<size_t>(cols);
    std::vector<unsigned char> seg(plane);
    for (uint32_t i = 0; i < nseg; i++) {
        uint64_t begin = le32(4 + 4 * i), end = i + 1 < nseg ? le32(4 + 4 * (i + 1)) : f.size();
        if (begin < 64 || begin > end || end > f.size()) return "an RLE segment offset is out of order or past the frame";
        size_t j = 0;
        uint64_t p = begin;
        while (p < end && j < plane) {
            int n = static_cast<signed char>(f[p++]);
            if (n >= 0) {
                size_t k = static_cast<size_t>(n) + 1;
                if (k > end - p) return "an RLE literal run past its segment";
                k = std::min(k, plane - j);
                std::memcpy(seg.data() + j, f.data() + p, k);
                p += static_cast<size_t>(n) + 1, j += k;
            } else if (n != -128) {
                if (p >= end) return "an RLE replicate run past its segment";
                size_t k = std::min(static_cast<size_t>(1 - n), plane - j);
                std::memset(seg.data() + j, f[p++], k);
                j += k;
            }
        }
        if (j < plane) return "an RLE segment decodes to fewer bytes than the image";
        int sample = static_cast<int>(i) / bytes, msb = static_cast<int>(i) % bytes; /* 0: most significant */
        int at = bytes - 1 - msb;
        for (size_t q = 0; q < plane; q++) raw[(q * spp + sample) * bytes + at] = seg[q];
    }
    return std::string();
}

/* ---- colour in lossy JPEG ---- */

/* Whether an 8-bit lossy JPEG's three components are YCbCr: the DICOM
 * attribute says YBR_*; or, labelled RGB, the stream says so as libjpeg
 * reads it -- a JFIF APP0 marker (JFIF is YCbCr), an Adobe APP14 marker's
 * transform 1, component IDs 1, 2, 3 (JFIF's numbering: GDCM writes RGB
 * files so) -- or its chroma is subsampled (RGB never is). Otherwise (IDs
 * 'R','G','B' or 0, 1, 2, an Adobe transform 0) the RGB label holds, as
 * pydicom reads it. */
bool jpeg_is_ycbcr(const std::vector<unsigned char> &j, const std::string &pi)
{
    if (pi.compare(0, 3, "YBR") == 0) return true;
    size_t i = 2;
    if (j.size() < 4 || j[0] != 0xff || j[1] != 0xd8) return false;
    int adobe = -1;
    bool jfif = false;
    while (i + 4 <= j.size()) {
        if (j[i] != 0xff) return false;
        unsigned m = j[i + 1];
        if (m == 0xff) {
            i++;
            continue;
        }
        if (m == 0xda || m == 0xd9) return false; /* no frame header before the scan */
        size_t len = (static_cast<size_t>(j[i + 2]) << 8) | j[i + 3];
        if (len < 2 || i + 2 + len > j.size()) return false;
        const unsigned char *p = j.data() + i + 4;
        size_t n = len - 2;
        if (m == 0xe0 && n >= 5 && std::memcmp(p, "JFIF\0", 5) == 0) jfif = true;
        if (m == 0xee && n >= 12 && std::memcmp(p, "Adobe", 5) == 0) adobe = p[11];
        if ((m == 0xc0 || m == 0xc1 || m == 0xc2) && n >= 6 + 3 * 3 && p[5] == 3) {
            if (jfif) return true;
            if (adobe >= 0) return adobe == 1;
            const unsigned char *c = p + 6; /* id, sampling, table per component */
            if (c[0] == 1 && c[3] == 2 && c[6] == 3) return true;
            return c[1] != c[4] || c[1] != c[7];
        }
        i += 2 + len;
    }
    return false;
}

/* Debian's dcmjpeg (3.6.7) loops forever when its bit-depth scan of a
 * frame meets a TEM marker (FF 01) before the frame header: DCMTK bug
 * #1190, fixed upstream in 2026. The same walk here, refusing such a
 * stream before dcmjpeg sees it. */
bool jpeg_tem_before_sof(const std::vector<unsigned char> &d)
{
    size_t o = 0, n = d.size();
    while (o + 4 < n) {
        unsigned m = (static_cast<unsigned>(d[o]) << 8) | d[o + 1];
        size_t len = (static_cast<size_t>(d[o + 2]) << 8) | d[o + 3];
        if (m == 0xff01) return true;
        if ((m >= 0xffc0 && m <= 0xffcf && m != 0xffc4 && m != 0xffc8 && m != 0xffcc)) return false; /* a SOF */
        if (m == 0xffc4 || m == 0xffc8 || m == 0xffcc || (m >= 0xffda && m <= 0xffdf) || (m >= 0xffe0 && m <= 0xfffe))
            o += len + 2;
        else if ((m >= 0xffd0 && m <= 0xffd9)) o += 2;
        else if (m == 0xffff) o += 1;
        else if (d[o] == 0xff && d[o + 1] > 2 && d[o + 1] <= 0xbf) o += 2;
        else return false; /* dcmjpeg stops: a syntax error */
    }
    return false;
}

/* libjpeg's YCbCr -> RGB (jdcolor.c: 16-bit fixed point, the same tables),
 * in place on 8-bit samples, interleaved or by plane. */
void ycbcr_to_rgb(unsigned char *px, int64_t n, bool planar)
{
    const int32_t half = 1 << 15;
    auto fix = [](double x) { return static_cast<int32_t>(x * 65536.0 + 0.5); };
    for (int64_t i = 0; i < n; i++) {
        unsigned char *y = planar ? px + i : px + 3 * i;
        unsigned char *cb = planar ? px + n + i : y + 1, *cr = planar ? px + 2 * n + i : y + 2;
        int32_t Y = *y, x_cb = *cb - 128, x_cr = *cr - 128;
        int32_t r = Y + ((fix(1.40200) * x_cr + half) >> 16);
        int32_t g = Y + ((-fix(0.34414) * x_cb + half - fix(0.71414) * x_cr) >> 16);
        int32_t b = Y + ((fix(1.77200) * x_cb + half) >> 16);
        *y = static_cast<unsigned char>(std::min(255, std::max(0, r)));
        *cb = static_cast<unsigned char>(std::min(255, std::max(0, g)));
        *cr = static_cast<unsigned char>(std::min(255, std::max(0, b)));
    }
}

simclr_status decode(const simclr__med_source *src, int64_t frame, int64_t max_pixels, simclr_medical_image *img)
{
    const char *name = src->name;
    setup_dcmtk();
    std::string meta_ts;
    E_TransferSyntax read_xfer = EXS_Unknown;
    bool no_meta = false;
    std::string bad = scan_lengths(src, max_pixels, &meta_ts, &read_xfer, &no_meta);
    if (!meta_ts.empty() && DcmXfer(meta_ts.c_str()).getXfer() == EXS_Unknown)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: unknown transfer syntax %s", name,
                                printable_uid(meta_ts).c_str());
    if (!meta_ts.empty() && !supported(DcmXfer(meta_ts.c_str()).getXfer()))
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: transfer syntax %s is not supported", name,
                                printable_uid(meta_ts).c_str());
    if (!bad.empty())
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: not a readable DICOM file: %s (truncated or corrupt)", name,
                                bad.c_str());
    DcmFileFormat ff;
    OFCondition cond;
    if (no_meta && src->fd >= 0) {
        cond = ff.getDataset()->loadFile(OFFilename(name), read_xfer, EGL_noChange, DCM_MaxReadLength);
    } else if (src->fd >= 0) {
        cond = ff.loadFile(OFFilename(name), read_xfer, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
    } else {
        DcmInputBufferStream in;
        in.setBuffer(src->data, static_cast<offile_off_t>(src->size));
        in.setEos();
        DcmObject *obj = no_meta ? static_cast<DcmObject *>(ff.getDataset()) : static_cast<DcmObject *>(&ff);
        obj->transferInit();
        cond = obj->read(in, read_xfer, EGL_noChange, DCM_MaxReadLength);
        obj->transferEnd();
    }
    DcmMetaInfo *meta = ff.getMetaInfo();
    DcmDataset *ds = ff.getDataset();

    /* The transfer syntax first: an unknown or unsupported one is named as
     * such, whether or not the rest could be read. */
    std::string ts_uid = string_of(meta, DCM_TransferSyntaxUID);
    if (!ts_uid.empty() && DcmXfer(ts_uid.c_str()).getXfer() == EXS_Unknown)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: unknown transfer syntax %s", name,
                                printable_uid(ts_uid).c_str());
    if (!ts_uid.empty() && !supported(DcmXfer(ts_uid.c_str()).getXfer()))
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: transfer syntax %s is not supported", name,
                                printable_uid(ts_uid).c_str());
    if (cond.bad() || !ds)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: not a DICOM file DCMTK can read (%s)", name, cond.text());
    E_TransferSyntax ts = ds->getOriginalXfer();
    if (ts_uid.empty()) ts_uid = DcmXfer(ts).getXferID();
    DcmElement *pd_elem = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, pd_elem).bad() || !pd_elem)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: a DICOM file without pixel data (no image)", name);
    if (!supported(ts))
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: transfer syntax %s is not supported", name,
                                printable_uid(ts_uid).c_str());
    /* dcmdata makes Pixel Data a DcmPixelData only with VR OB, OW (or ox):
     * another VR (OV, found by fuzz_dicom) gives a plain element. */
    DcmPixelData *pix = dynamic_cast<DcmPixelData *>(pd_elem);
    if (!pix)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the Pixel Data element has VR %s, not OB or OW", name,
                                DcmVR(pd_elem->getVR()).getVRName());

    /* Geometry and pixel format, checked before anything is decoded. */
    Uint16 rows16 = 0, cols16 = 0, spp16 = 0, ba16 = 0, bs16 = 0, hb16 = 0, pr16 = 0, pc16 = 0;
    if (ds->findAndGetUint16(DCM_Rows, rows16).bad() || ds->findAndGetUint16(DCM_Columns, cols16).bad() ||
        ds->findAndGetUint16(DCM_BitsAllocated, ba16).bad())
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: Rows, Columns or Bits Allocated is missing", name);
    if (ds->findAndGetUint16(DCM_SamplesPerPixel, spp16).bad()) spp16 = 1;
    if (ds->findAndGetUint16(DCM_BitsStored, bs16).bad()) bs16 = ba16;
    if (ds->findAndGetUint16(DCM_HighBit, hb16).bad()) hb16 = static_cast<Uint16>(bs16 ? bs16 - 1 : 0);
    if (ds->findAndGetUint16(DCM_PixelRepresentation, pr16).bad()) pr16 = 0;
    if (ds->findAndGetUint16(DCM_PlanarConfiguration, pc16).bad()) pc16 = 0;
    Sint32 nf = 1;
    if (ds->tagExistsWithValue(DCM_NumberOfFrames) && (ds->findAndGetSint32(DCM_NumberOfFrames, nf).bad() || nf < 1))
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: Number of Frames is not a positive number", name);
    int64_t rows = rows16, cols = cols16, frames = nf;
    int spp = spp16, ba = ba16, bs = bs16, hb = hb16, is_signed = pr16 == 1;
    if (rows < 1 || cols < 1)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the image has no pixels (%lld rows x %lld columns)", name,
                                (long long)rows, (long long)cols);
    if (rows > max_pixels / cols)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: %lld rows x %lld columns exceed max_pixels %lld", name,
                                (long long)rows, (long long)cols, (long long)max_pixels);
    if (frame >= frames)
        return simclr__med_fail(SIMCLR_E_INVALID, "%s: frame %lld is out of range (the file has %lld)", name,
                                (long long)frame, (long long)frames);
    if (ba == 1)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: 1-bit pixel data (a binary segmentation) is not supported",
                                name);
    if (ba != 8 && ba != 16 && ba != 32)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: %d bits allocated per sample is not supported (8, 16, 32)",
                                name, ba);
    if (spp != 1 && spp != 3)
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: %d samples per pixel is not supported (1 or 3)", name, spp);
    if (bs < 1 || bs > ba || hb < bs - 1 || hb >= ba)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: bits stored %d with high bit %d do not fit %d bits allocated",
                                name, bs, hb, ba);
    if (spp == 3 && pc16 > 1)
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: planar configuration %u is invalid", name, (unsigned)pc16);
    std::string pi = string_of(ds, DCM_PhotometricInterpretation);
    const char *photometric = nullptr;
    if (spp == 1 && pi == "MONOCHROME1") photometric = "MONOCHROME1";
    else if (spp == 1 && pi == "MONOCHROME2") photometric = "MONOCHROME2";
    else if (spp == 3 && pi == "RGB") photometric = "RGB";
    else if (spp == 3 && is_jpeg_lossy(ts) && ba == 8 && (pi == "YBR_FULL" || pi == "YBR_FULL_422"))
        photometric = "RGB"; /* converted below (ycbcr_to_rgb) */
    else if (spp == 3 && is_j2k(ts) && (pi == "YBR_RCT" || pi == "YBR_ICT"))
        photometric = "RGB"; /* OpenJPEG undoes the component transform */
    if (!photometric) {
        std::string shown;
        for (char ch : pi)
            if (shown.size() < 16 && ((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) shown += ch;
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: photometric interpretation %s with %d samples per pixel "
                                "in transfer syntax %s is not supported", name, shown.empty() ? "(none)" : shown.c_str(),
                                spp, printable_uid(ts_uid).c_str());
    }
    if (spp == 1 && ds->tagExistsWithValue(DCM_ModalityLUTSequence))
        return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: a Modality LUT Sequence is not supported (only Rescale "
                                "Slope/Intercept)", name);

    int64_t sample_bytes = ba / 8;
    int64_t frame_bytes = rows * cols * spp * sample_bytes;
    /* Native pixel data must hold every frame: a short value would be
     * handed out as it is. */
    if (is_native(ts)) {
        int64_t have = static_cast<int64_t>(pix->getLength());
        if (frames > have / frame_bytes)
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: truncated pixel data: %lld bytes, %lld frames of %lld rows x "
                                    "%lld columns x %d samples x %d bits need %lld", name, (long long)have,
                                    (long long)frames, (long long)rows, (long long)cols, spp, ba,
                                    (long long)(frames > INT64_MAX / frame_bytes ? INT64_MAX : frames * frame_bytes));
    }

    /* Decode the one frame. */
    Freer raw{std::malloc(static_cast<size_t>(frame_bytes) + 1)};
    if (!raw.p)
        return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory to decode %lld bytes of pixel data", name,
                                (long long)frame_bytes);
    int planar = spp == 3 && pc16 == 1;
    if (ts == EXS_RLELossless) {
        std::vector<unsigned char> code;
        OFCondition c = frame_bytes_of(pix, ts, static_cast<long>(frame), static_cast<long>(frames), code);
        if (c.bad())
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the RLE fragments of frame %lld cannot be found (%s)", name,
                                    (long long)frame, c.text());
        std::string err = rle_frame(code, static_cast<long>(rows), static_cast<long>(cols), spp,
                                    static_cast<int>(sample_bytes), static_cast<unsigned char *>(raw.p));
        if (!err.empty()) return simclr__med_fail(SIMCLR_E_FORMAT, "%s: %s (frame %lld)", name, err.c_str(), (long long)frame);
        planar = 0; /* segments are planes; written interleaved above */
    } else if (is_j2k(ts)) {
        std::vector<unsigned char> code;
        OFCondition c = frame_bytes_of(pix, ts, static_cast<long>(frame), static_cast<long>(frames), code);
        if (c.bad())
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: the JPEG 2000 fragments of frame %lld cannot be found (%s)",
                                    name, (long long)frame, c.text());
        std::string err = j2k_frame(code, static_cast<long>(rows), static_cast<long>(cols), spp,
                                    static_cast<int>(sample_bytes), static_cast<unsigned char *>(raw.p));
        if (!err.empty()) return simclr__med_fail(SIMCLR_E_FORMAT, "%s: %s (frame %lld)", name, err.c_str(), (long long)frame);
        planar = 0; /* written interleaved above */
    } else {
        Uint32 size = 0;
        OFCondition c = pix->getUncompressedFrameSize(ds, size);
        if (c.bad() || static_cast<int64_t>(size) < frame_bytes)
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: DCMTK cannot size a frame (%s)", name,
                                    c.bad() ? c.text() : "smaller than the attributes say");
        /* DCMTK wants an odd frame's pad byte too. */
        size = static_cast<Uint32>(frame_bytes + (frame_bytes & 1));
        if (is_jpeg_lossy(ts) || ts == EXS_JPEGProcess14 || ts == EXS_JPEGProcess14SV1) {
            std::vector<unsigned char> code;
            if (frame_bytes_of(pix, ts, static_cast<long>(frame), static_cast<long>(frames), code).good() &&
                jpeg_tem_before_sof(code))
                return simclr__med_fail(SIMCLR_E_FORMAT, "%s: corrupt JPEG data in frame %lld (a TEM marker before the "
                                        "frame header)", name, (long long)frame);
        }
        Uint32 start = 0;
        OFString model;
        c = pix->getUncompressedFrame(ds, static_cast<Uint32>(frame), start, raw.p, size, model);
        if (c.bad())
            return simclr__med_fail(SIMCLR_E_FORMAT, "%s: corrupt or truncated pixel data: frame %lld cannot be decoded "
                                    "(%s; transfer syntax %s)", name, (long long)frame, c.text(),
                                    printable_uid(ts_uid).c_str());
        /* Big endian native data comes back swapped in units of the pixel
         * data's VR (OW: 16 bits), which are not the samples' when 8 or 32
         * bits are allocated: undo that swap, swap per sample. */
        int unit = pix->getVR() == EVR_OW ? 2 : 1;
        if (ts == EXS_BigEndianExplicit && unit != sample_bytes) {
            unsigned char *b = static_cast<unsigned char *>(raw.p);
            int64_t n = frame_bytes + (frame_bytes & 1);
            if (unit == 2)
                for (int64_t i = 0; i + 1 < n; i += 2) std::swap(b[i], b[i + 1]);
            if (sample_bytes == 2)
                for (int64_t i = 0; i + 1 < n; i += 2) std::swap(b[i], b[i + 1]);
            else if (sample_bytes == 4)
                for (int64_t i = 0; i + 3 < n; i += 4) std::swap(b[i], b[i + 3]), std::swap(b[i + 1], b[i + 2]);
        }
        if (spp == 3 && is_jpeg_lossy(ts)) {
            std::vector<unsigned char> code;
            if (frame_bytes_of(pix, ts, static_cast<long>(frame), static_cast<long>(frames), code).good() &&
                jpeg_is_ycbcr(code, pi))
                ycbcr_to_rgb(static_cast<unsigned char *>(raw.p), rows * cols, planar);
        } else if (spp == 3 && model != "RGB")
            return simclr__med_fail(SIMCLR_E_UNSUPPORTED, "%s: the decoder returned color model %s, not RGB", name,
                                    model.length() < 20 ? model.c_str() : "(long)");
    }

    /* The modality rescale (gray only) and the VOI window. */
    double slope = 1, intercept = 0, center = 0, width = 0;
    bool has_window = false;
    if (spp == 1) {
        double s = 1, i = 0;
        if (functional_pair(ds, static_cast<long>(frame), DCM_PixelValueTransformationSequence, DCM_RescaleSlope,
                            DCM_RescaleIntercept, &s, &i, false)) {
            slope = s, intercept = i;
        } else {
            number_of(ds, DCM_RescaleSlope, &slope);
            number_of(ds, DCM_RescaleIntercept, &intercept);
        }
        double c = 0, w = 0;
        if (functional_pair(ds, static_cast<long>(frame), DCM_FrameVOILUTSequence, DCM_WindowCenter, DCM_WindowWidth,
                            &c, &w, true) ||
            (number_of(ds, DCM_WindowCenter, &c) && number_of(ds, DCM_WindowWidth, &w))) {
            if (w >= 1) center = c, width = w, has_window = true;
        }
    }

    size_t count = static_cast<size_t>(rows * cols * spp);
    float *out = static_cast<float *>(std::malloc(count * sizeof(float)));
    std::string sop = string_of(ds, DCM_SOPInstanceUID), pid = string_of(ds, DCM_PatientID);
    char *sop_c = dup_string(sop), *pid_c = dup_string(pid);
    if (!out || !sop_c || !pid_c) {
        std::free(out), std::free(sop_c), std::free(pid_c);
        return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory for %lld x %lld x %d values", name, (long long)rows,
                                (long long)cols, spp);
    }
    const unsigned char *base = static_cast<const unsigned char *>(raw.p);
    unsigned shift = static_cast<unsigned>(hb + 1 - bs);
    uint32_t mask = bs == 32 ? 0xffffffffu : (uint32_t(1) << bs) - 1;
    uint32_t sign = uint32_t(1) << (bs - 1);
    int64_t plane = rows * cols;
    for (int64_t p = 0; p < plane; p++)
        for (int k = 0; k < spp; k++) {
            int64_t idx = planar ? k * plane + p : p * spp + k;
            const unsigned char *q = base + idx * sample_bytes;
            uint32_t v;
            if (sample_bytes == 1) v = q[0];
            else if (sample_bytes == 2) {
                uint16_t t;
                std::memcpy(&t, q, 2);
                v = t;
            } else std::memcpy(&v, q, 4);
            v = (v >> shift) & mask;
            double s = static_cast<double>(v);
            if (is_signed && (v & sign)) s -= bs == 32 ? 4294967296.0 : static_cast<double>(uint64_t(1) << bs);
            out[p * spp + k] = static_cast<float>(spp == 1 ? s * slope + intercept : s);
        }

    img->data = out;
    img->h = rows, img->w = cols, img->c = spp;
    img->frames = frames, img->frame = frame;
    img->format = SIMCLR_MEDICAL_DICOM;
    img->photometric = photometric;
    img->inverted = pi == "MONOCHROME1";
    img->bits = bs, img->is_signed = is_signed;
    img->slope = slope, img->intercept = intercept;
    img->has_window = has_window, img->center = center, img->width = width;
    img->sop_uid = sop_c, img->group_id = pid_c;
    return SIMCLR_OK;
}

} // namespace

extern "C" simclr_status simclr__med_dicom(const simclr__med_source *src, int64_t frame, int64_t max_pixels,
                                           simclr_medical_image *img)
{
    try {
        return decode(src, frame, max_pixels, img);
    } catch (const std::bad_alloc &) {
        return simclr__med_fail(SIMCLR_E_NOMEM, "%s: no memory while DCMTK read the file", src->name);
    } catch (...) {
        return simclr__med_fail(SIMCLR_E_FORMAT, "%s: DCMTK failed on the file (an exception)", src->name);
    }
}
