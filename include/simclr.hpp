/*
 * simclr.hpp — header-only C++17 wrapper over the libsimclr C API.
 *
 * Every C handle gets an owning class (move-only, destroyed by its C destroy
 * function when it goes out of scope), every non-OK status becomes a thrown
 * simclr::Error carrying the status and simclr_last_error(). Nothing here adds
 * state or behaviour: the C header (simclr.h) stays the reference manual.
 *
 * Lifetimes follow the C rules, which C++ scoping makes natural: declare the
 * Context first (it is destroyed last) and the pieces a Trainer or Optimizer
 * borrows before them.
 *
 *     simclr::Context ctx("cpu", 0);
 *     auto enc = simclr::Module::resnet(ctx, 18, 16, 1, SIMCLR_STEM_CIFAR, 42);
 *     auto x = simclr::Tensor::zeros(ctx, SIMCLR_F32, {8, 1, 28, 28});
 *     auto y = simclr::Tensor::zeros(ctx, SIMCLR_F32, {8, enc.output_dim()});
 *     enc.forward(x, SIMCLR_EVAL, y);
 */
#ifndef SIMCLR_HPP
#define SIMCLR_HPP

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simclr.h"

namespace simclr {

/* ------------------------------------------------------------- errors -- */

/* A failed libsimclr call: status() is the simclr_status, what() the
 * detailed message of simclr_last_error() at the time of the failure. */
class Error : public std::runtime_error {
public:
    Error(simclr_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    simclr_status status() const noexcept { return status_; }
    const char *status_string() const noexcept { return simclr_status_string(status_); }

private:
    simclr_status status_;
};

/* Throws simclr::Error for any status but SIMCLR_OK. */
inline void check(simclr_status status)
{
    if (status != SIMCLR_OK) {
        const char *msg = simclr_last_error();
        throw Error(status, (msg && *msg) ? msg : simclr_status_string(status));
    }
}

/* Throws when the loaded library is older than this header or of another
 * major version (the ABI promise: same major, minor >= the header's). */
inline void check_version()
{
    const unsigned v = simclr_version_number();
    if (v / 10000 != SIMCLR_VERSION_MAJOR || (v / 100) % 100 < SIMCLR_VERSION_MINOR)
        throw Error(SIMCLR_E_UNSUPPORTED, std::string("libsimclr ") + simclr_version_string() +
                                              " is incompatible with simclr.hpp for " +
                                              std::to_string(SIMCLR_VERSION_MAJOR) + "." +
                                              std::to_string(SIMCLR_VERSION_MINOR));
}

namespace detail {
template <class T, void (*Destroy)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Destroy(p); }
};
template <class T, void (*Destroy)(T *)>
using Owner = std::unique_ptr<T, Deleter<T, Destroy>>;
} // namespace detail

/* ------------------------------------------------------------ context -- */

class Context {
public:
    /* backend: "cpu" / "ref" / nullptr (= "cpu"); threads: 0 = all cores. */
    explicit Context(const char *backend = nullptr, int threads = 0,
                     const simclr_allocator *allocator = nullptr)
    {
        simclr_context *c = nullptr;
        check(simclr_context_create(backend, threads, allocator, &c));
        p_.reset(c);
    }
    simclr_context *get() const noexcept { return p_.get(); }
    std::string backend() const { return simclr_context_backend(p_.get()); }
    int threads() const noexcept { return simclr_context_threads(p_.get()); }
    /* fn must return normally and not throw (it is called from C). */
    void set_log(simclr_log_fn fn, void *user, simclr_log_level max_level = SIMCLR_LOG_INFO)
    {
        check(simclr_context_set_log(p_.get(), fn, user, max_level));
    }
    void set_progress(simclr_progress_fn fn, void *user)
    {
        check(simclr_context_set_progress(p_.get(), fn, user));
    }

private:
    detail::Owner<simclr_context, simclr_context_destroy> p_;
};

/* ------------------------------------------------------------- tensors -- */

/* A non-owning view of a tensor (module parameters, optimizer state, or any
 * Tensor). Valid while the owner is. */
class TensorView {
public:
    TensorView() = default;
    explicit TensorView(simclr_tensor *t) noexcept : t_(t) {}
    simclr_tensor *get() const noexcept { return t_; }
    explicit operator bool() const noexcept { return t_ != nullptr; }
    int ndim() const noexcept { return simclr_tensor_ndim(t_); }
    int64_t dim(int axis) const noexcept { return simclr_tensor_dim(t_, axis); }
    std::vector<int64_t> shape() const
    {
        std::vector<int64_t> s;
        for (int i = 0; i < ndim(); i++) s.push_back(dim(i));
        return s;
    }
    simclr_dtype dtype() const noexcept { return static_cast<simclr_dtype>(simclr_tensor_dtype(t_)); }
    int64_t numel() const noexcept { return simclr_tensor_numel(t_); }
    std::size_t bytes() const noexcept { return simclr_tensor_bytes(t_); }
    /* Typed data pointer; throws when T does not match the dtype. */
    template <class T>
    T *data() const
    {
        const bool ok = (sizeof(T) == 4 && dtype() == SIMCLR_F32) || (sizeof(T) == 1 && dtype() == SIMCLR_U8);
        if (!ok) throw Error(SIMCLR_E_SHAPE, "simclr.hpp: data<T>() with the wrong element type");
        return static_cast<T *>(simclr_tensor_data(t_));
    }
    template <class T>
    void copy_from(const std::vector<T> &src)
    {
        check(simclr_tensor_copy_from(t_, src.data(), src.size() * sizeof(T)));
    }
    template <class T>
    std::vector<T> to_vector() const
    {
        std::vector<T> out(bytes() / sizeof(T));
        check(simclr_tensor_copy_to(t_, out.data(), out.size() * sizeof(T)));
        return out;
    }
    void reshape(std::initializer_list<int64_t> shape)
    {
        std::vector<int64_t> s(shape);
        check(simclr_tensor_reshape(t_, static_cast<int>(s.size()), s.data()));
    }

protected:
    simclr_tensor *t_ = nullptr;
};

/* An owning tensor. Converts to TensorView implicitly, so every call below
 * takes either. */
class Tensor : public TensorView {
public:
    Tensor() = default;
    Tensor(const Tensor &) = delete;
    Tensor &operator=(const Tensor &) = delete;
    Tensor(Tensor &&o) noexcept : TensorView(o.t_) { o.t_ = nullptr; }
    Tensor &operator=(Tensor &&o) noexcept
    {
        if (this != &o) {
            simclr_tensor_destroy(t_);
            t_ = o.t_;
            o.t_ = nullptr;
        }
        return *this;
    }
    ~Tensor() { simclr_tensor_destroy(t_); }

    /* Zero-filled, owned memory. */
    static Tensor zeros(const Context &ctx, simclr_dtype dtype, std::vector<int64_t> shape)
    {
        simclr_tensor *t = nullptr;
        check(simclr_tensor_create(ctx.get(), dtype, static_cast<int>(shape.size()), shape.data(), &t));
        return Tensor(t);
    }
    /* Borrows data (zero-copy): it must outlive the tensor. */
    static Tensor wrap(const Context &ctx, simclr_dtype dtype, std::vector<int64_t> shape, void *data)
    {
        simclr_tensor *t = nullptr;
        check(simclr_tensor_wrap(ctx.get(), dtype, static_cast<int>(shape.size()), shape.data(), data, &t));
        return Tensor(t);
    }

private:
    explicit Tensor(simclr_tensor *t) noexcept : TensorView(t) {}
};

/* ------------------------------------------------------------- modules -- */

struct Param {
    std::string name;
    TensorView value;
    TensorView grad; /* empty for buffers */
    int flags;
    bool no_decay() const noexcept { return (flags & SIMCLR_PARAM_NO_DECAY) != 0; }
    bool is_buffer() const noexcept { return (flags & SIMCLR_PARAM_BUFFER) != 0; }
};

class Module {
public:
    /* simclr_resnet_create_v2 (sizes are int64_t, as in the C header). */
    static Module resnet(const Context &ctx, int depth, int64_t width, int64_t in_channels, simclr_stem stem,
                         uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_resnet_create_v2(ctx.get(), depth, width, in_channels, stem, seed, &m));
        return Module(m);
    }
    /* simclr_mlp_head_create_v2. */
    static Module mlp_head(const Context &ctx, int64_t in_dim, int64_t hidden_dim, int64_t out_dim, int n_layers,
                           bool batch_norm, uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_mlp_head_create_v2(ctx.get(), in_dim, hidden_dim, out_dim, n_layers, batch_norm ? 1 : 0,
                                        seed, &m));
        return Module(m);
    }
    /* SwAV's prototypes (simclr_swav_prototypes_create): pass them to the
     * Optimizer with encoder and head, then to Trainer::swav. */
    static Module swav_prototypes(const Context &ctx, int64_t dim, int64_t k, uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_swav_prototypes_create(ctx.get(), dim, k, seed, &m));
        return Module(m);
    }
    /* Vision Transformer (simclr_vit_create / simclr_vit_create_preset). */
    static Module vit(const Context &ctx, int64_t image_size, int64_t patch_size, int64_t in_channels,
                      int64_t hidden_dim, int depth, int heads, int64_t mlp_dim, simclr_vit_pool pool,
                      uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_vit_create(ctx.get(), image_size, patch_size, in_channels, hidden_dim, depth, heads, mlp_dim,
                                pool, seed, &m));
        return Module(m);
    }
    static Module vit_preset(const Context &ctx, simclr_vit_preset preset, int64_t in_channels, uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_vit_create_preset(ctx.get(), preset, in_channels, seed, &m));
        return Module(m);
    }
    /* simclr_linear_head_create: Linear(in_dim, n_classes), named fc.weight / fc.bias. */
    static Module linear_head(const Context &ctx, int64_t in_dim, int n_classes, uint64_t seed)
    {
        simclr_module *m = nullptr;
        check(simclr_linear_head_create(ctx.get(), in_dim, n_classes, seed, &m));
        return Module(m);
    }
    simclr_module *get() const noexcept { return p_.get(); }
    int64_t output_dim() const noexcept { return simclr_module_output_dim(p_.get()); }
    std::string arch() const
    {
        const char *a = simclr_module_arch(p_.get());
        return a ? a : "";
    }
    void forward(const TensorView &x, simclr_mode mode, const TensorView &y)
    {
        check(simclr_module_forward(p_.get(), x.get(), mode, y.get()));
    }
    void backward(const TensorView &dy, const TensorView &dx = TensorView())
    {
        check(simclr_module_backward(p_.get(), dy.get(), dx.get()));
    }
    void zero_grad() { check(simclr_module_zero_grad(p_.get())); }
    int param_count() const noexcept { return simclr_module_param_count(p_.get()); }
    int64_t param_scalars() const noexcept { return simclr_module_param_scalars(p_.get()); }
    Param param(int index) const
    {
        const char *name = nullptr;
        simclr_tensor *value = nullptr, *grad = nullptr;
        int flags = 0;
        check(simclr_module_param(p_.get(), index, &name, &value, &grad, &flags));
        return Param{name ? name : "", TensorView(value), TensorView(grad), flags};
    }
    std::vector<Param> params() const
    {
        std::vector<Param> out;
        for (int i = 0; i < param_count(); i++) out.push_back(param(i));
        return out;
    }
    void save(const std::string &path) const { check(simclr_module_save(p_.get(), path.c_str())); }
    void load(const std::string &path) { check(simclr_module_load(p_.get(), path.c_str())); }
    void export_safetensors(const std::string &path) const
    {
        check(simclr_module_export_safetensors(p_.get(), path.c_str()));
    }
    void import_safetensors(const std::string &path)
    {
        check(simclr_module_import_safetensors(p_.get(), path.c_str()));
    }

private:
    explicit Module(simclr_module *m) noexcept : p_(m) {}
    detail::Owner<simclr_module, simclr_module_destroy> p_;
};

/* simclr_export_classifier_safetensors: encoder + linear head under
 * torchvision's names (fc.* after a ResNet, heads.head.* after a ViT). */
inline void export_classifier_safetensors(const Module &encoder, const Module &head, const std::string &path)
{
    check(simclr_export_classifier_safetensors(encoder.get(), head.get(), path.c_str()));
}

/* ---------------------------------------------------------- image lists -- */

/* Borrowed host images of any size (the pixels must outlive every call
 * that reads the list). */
class ImageList {
public:
    ImageList(const Context &ctx, int64_t channels)
    {
        simclr_image_list *l = nullptr;
        check(simclr_image_list_create(ctx.get(), channels, &l));
        p_.reset(l);
    }
    simclr_image_list *get() const noexcept { return p_.get(); }
    ImageList &add(const uint8_t *pixels, int64_t height, int64_t width)
    {
        check(simclr_image_list_add(p_.get(), pixels, height, width));
        return *this;
    }
    /* Every image of a U8 [N, H, W, C] tensor, borrowed. */
    ImageList &add(const TensorView &images)
    {
        check(simclr_image_list_add_tensor(p_.get(), images.get()));
        return *this;
    }
    void clear() { check(simclr_image_list_clear(p_.get())); }
    int64_t count() const noexcept { return simclr_image_list_count(p_.get()); }

private:
    detail::Owner<simclr_image_list, simclr_image_list_destroy> p_;
};

/* -------------------------------------------------------- augmentation -- */

class Augment {
public:
    Augment(const Context &ctx, simclr_augment_preset preset, int64_t out_h, int64_t out_w)
    {
        simclr_augment *a = nullptr;
        check(simclr_augment_create_v2(ctx.get(), preset, out_h, out_w, &a));
        p_.reset(a);
    }
    simclr_augment *get() const noexcept { return p_.get(); }
    Augment &set(simclr_augment_param key, double value)
    {
        check(simclr_augment_set(p_.get(), key, value));
        return *this;
    }
    double get(simclr_augment_param key) const
    {
        double v = 0;
        check(simclr_augment_get(p_.get(), key, &v));
        return v;
    }
    void apply(const TensorView &images, uint64_t seed, int view, const TensorView &out)
    {
        check(simclr_augment_apply(p_.get(), images.get(), seed, view, out.get()));
    }
    void pair(const TensorView &images, uint64_t seed, const TensorView &view0, const TensorView &view1)
    {
        check(simclr_augment_pair(p_.get(), images.get(), seed, view0.get(), view1.get()));
    }

private:
    detail::Owner<simclr_augment, simclr_augment_destroy> p_;
};

/* ---------------------------------------------------------------- loss -- */

class NTXent {
public:
    NTXent(const Context &ctx, double temperature, int n_views = 2)
    {
        simclr_loss *l = nullptr;
        check(simclr_ntxent_create(ctx.get(), temperature, n_views, &l));
        p_.reset(l);
    }
    simclr_loss *get() const noexcept { return p_.get(); }
    /* Returns the loss; *accuracy (may be null) gets the contrastive top-1. */
    float forward(const TensorView &z, float *accuracy = nullptr)
    {
        float v = 0;
        check(simclr_loss_forward(p_.get(), z.get(), &v, accuracy));
        return v;
    }
    void backward(const TensorView &dz) { check(simclr_loss_backward(p_.get(), dz.get())); }

private:
    detail::Owner<simclr_loss, simclr_loss_destroy> p_;
};

/* Supervised losses (fine-tuning, distillation): simclr_loss objects
 * whose gradient comes from backward() as NT-Xent's does. */
class SupervisedLoss {
public:
    simclr_loss *get() const noexcept { return p_.get(); }
    SupervisedLoss &set(simclr_loss_param key, double value)
    {
        check(simclr_loss_set(p_.get(), key, value));
        return *this;
    }
    double get(simclr_loss_param key) const
    {
        double v = 0;
        check(simclr_loss_get(p_.get(), key, &v));
        return v;
    }
    /* d(loss)/d(logits) of the last forward, F32 [N, classes]. */
    void backward(const TensorView &dlogits) { check(simclr_loss_backward(p_.get(), dlogits.get())); }

protected:
    explicit SupervisedLoss(simclr_loss *l) noexcept : p_(l) {}
    detail::Owner<simclr_loss, simclr_loss_destroy> p_;
};

/* simclr_cross_entropy_create: F.cross_entropy(logits, labels, label_smoothing). */
class CrossEntropy : public SupervisedLoss {
public:
    CrossEntropy(const Context &ctx, int n_classes, double label_smoothing = 0.0) : SupervisedLoss(make(ctx, n_classes))
    {
        if (label_smoothing != 0.0) set(SIMCLR_LOSS_LABEL_SMOOTHING, label_smoothing);
    }
    /* Returns the loss; *accuracy (may be null) gets the batch's top-1. */
    float forward(const TensorView &logits, const std::vector<int32_t> &labels, float *accuracy = nullptr)
    {
        float v = 0;
        check(simclr_loss_forward_labels(p_.get(), logits.get(), labels.data(), static_cast<int64_t>(labels.size()),
                                         &v, accuracy));
        return v;
    }

private:
    static simclr_loss *make(const Context &ctx, int n_classes)
    {
        simclr_loss *l = nullptr;
        check(simclr_cross_entropy_create(ctx.get(), n_classes, &l));
        return l;
    }
};

/* simclr_distill_create: SimCLR v2's distillation (x tau^2 by default), with
 * SIMCLR_LOSS_LABEL_WEIGHT for the cross-entropy on labelled rows. */
class Distill : public SupervisedLoss {
public:
    Distill(const Context &ctx, int n_classes, double temperature) : SupervisedLoss(make(ctx, n_classes, temperature)) {}
    /* labels: empty (no row labelled) or one per row, -1 = unlabelled.
     * *agreement (may be null): rows whose top-1 is the teacher's. */
    float forward(const TensorView &student, const TensorView &teacher, const std::vector<int32_t> &labels = {},
                  float *agreement = nullptr)
    {
        float v = 0;
        check(simclr_loss_forward_distill(p_.get(), student.get(), teacher.get(), labels.empty() ? nullptr : labels.data(),
                                          static_cast<int64_t>(labels.size()), &v, agreement));
        return v;
    }

private:
    static simclr_loss *make(const Context &ctx, int n_classes, double temperature)
    {
        simclr_loss *l = nullptr;
        check(simclr_distill_create(ctx.get(), n_classes, temperature, &l));
        return l;
    }
};

/* ----------------------------------------------------------- optimizer -- */

class Optimizer {
public:
    Optimizer(const Context &ctx, simclr_optimizer_kind kind, std::initializer_list<const Module *> modules)
    {
        std::vector<simclr_module *> ms;
        for (const Module *m : modules) ms.push_back(m->get());
        simclr_optimizer *o = nullptr;
        check(simclr_optimizer_create(ctx.get(), kind, ms.data(), static_cast<int>(ms.size()), &o));
        p_.reset(o);
    }
    simclr_optimizer *get() const noexcept { return p_.get(); }
    Optimizer &set(simclr_optimizer_param key, double value)
    {
        check(simclr_optimizer_set(p_.get(), key, value));
        return *this;
    }
    double get(simclr_optimizer_param key) const
    {
        double v = 0;
        check(simclr_optimizer_get(p_.get(), key, &v));
        return v;
    }
    double lr() const
    {
        double v = 0;
        check(simclr_optimizer_lr(p_.get(), &v));
        return v;
    }
    void step() { check(simclr_optimizer_step(p_.get())); }

private:
    detail::Owner<simclr_optimizer, simclr_optimizer_destroy> p_;
};

/* ------------------------------------------------------------- trainer -- */

class Trainer {
public:
    /* Borrows every piece: they must outlive the trainer. */
    Trainer(const Context &ctx, Module &encoder, Module &head, Augment &aug, NTXent &loss, Optimizer &opt)
    {
        simclr_trainer *t = nullptr;
        check(simclr_trainer_create(ctx.get(), encoder.get(), head.get(), aug.get(), loss.get(), opt.get(), &t));
        p_.reset(t);
    }
    /* A SwAV trainer (simclr_swav_trainer_create); borrows every piece. */
    static Trainer swav(const Context &ctx, Module &encoder, Module &head, Module &prototypes, Augment &aug,
                        Optimizer &opt)
    {
        simclr_trainer *t = nullptr;
        check(simclr_swav_trainer_create(ctx.get(), encoder.get(), head.get(), prototypes.get(), aug.get(),
                                         opt.get(), &t));
        return Trainer(t);
    }
    /* simclr_swav_set / simclr_swav_get (a SwAV trainer only). */
    void swav_set(simclr_swav_param key, double value) { check(simclr_swav_set(p_.get(), key, value)); }
    double swav_get(simclr_swav_param key) const
    {
        double v = 0;
        check(simclr_swav_get(p_.get(), key, &v));
        return v;
    }
    simclr_trainer *get() const noexcept { return p_.get(); }
    float step(const TensorView &images, uint64_t seed)
    {
        float loss = 0;
        check(simclr_trainer_step(p_.get(), images.get(), seed, &loss));
        return loss;
    }
    double stat(simclr_trainer_stat_key key) const
    {
        double v = 0;
        check(simclr_trainer_stat(p_.get(), key, &v));
        return v;
    }
    void save(const std::string &path) const { check(simclr_trainer_save(p_.get(), path.c_str())); }
    void load(const std::string &path) { check(simclr_trainer_load(p_.get(), path.c_str())); }

private:
    explicit Trainer(simclr_trainer *t) { p_.reset(t); }
    detail::Owner<simclr_trainer, simclr_trainer_destroy> p_;
};

/* Supervised fine-tuning (simclr_finetune_trainer_create): an optimizer over
 * the head only freezes the encoder. */
class FinetuneTrainer {
public:
    /* Borrows every piece: they must outlive the trainer. */
    FinetuneTrainer(const Context &ctx, Module &encoder, Module &head, Augment &aug, SupervisedLoss &loss,
                    Optimizer &opt)
    {
        simclr_trainer *t = nullptr;
        check(simclr_finetune_trainer_create(ctx.get(), encoder.get(), head.get(), aug.get(), loss.get(), opt.get(),
                                             &t));
        p_.reset(t);
    }
    simclr_trainer *get() const noexcept { return p_.get(); }
    /* labels: one per image, each in [0, classes). */
    float step(const TensorView &images, const std::vector<int32_t> &labels, uint64_t seed)
    {
        float loss = 0;
        check(simclr_trainer_step_labels(p_.get(), images.get(), labels.data(), static_cast<int64_t>(labels.size()),
                                         seed, &loss));
        return loss;
    }
    /* A distillation student (a Distill loss): labels empty (none) or one
     * per image, -1 for an unlabelled one. The teacher is only read. */
    float step_distill(const TensorView &images, Module &teacher_encoder, Module &teacher_head,
                       const std::vector<int32_t> &labels, uint64_t seed)
    {
        float loss = 0;
        check(simclr_trainer_step_distill(p_.get(), images.get(), teacher_encoder.get(), teacher_head.get(),
                                          labels.empty() ? nullptr : labels.data(),
                                          static_cast<int64_t>(labels.size()), seed, &loss));
        return loss;
    }
    double stat(simclr_trainer_stat_key key) const
    {
        double v = 0;
        check(simclr_trainer_stat(p_.get(), key, &v));
        return v;
    }
    bool encoder_frozen() const
    {
        double v = 0;
        check(simclr_trainer_get(p_.get(), SIMCLR_TRAINER_FREEZE_ENCODER, &v));
        return v != 0;
    }
    void save(const std::string &path) const { check(simclr_trainer_save(p_.get(), path.c_str())); }
    void load(const std::string &path) { check(simclr_trainer_load(p_.get(), path.c_str())); }

private:
    detail::Owner<simclr_trainer, simclr_trainer_destroy> p_;
};

/* ------------------------------------------------------------ datasets -- */

class Dataset {
public:
    static Dataset open_idx(const Context &ctx, const std::string &images, const std::string &labels = "")
    {
        simclr_dataset *d = nullptr;
        check(simclr_dataset_open_idx(ctx.get(), images.c_str(), labels.empty() ? nullptr : labels.c_str(), &d));
        return Dataset(d);
    }
    static Dataset open_cifar(const Context &ctx, const std::vector<std::string> &paths, bool cifar100 = false)
    {
        std::vector<const char *> ps;
        for (const auto &p : paths) ps.push_back(p.c_str());
        simclr_dataset *d = nullptr;
        check(simclr_dataset_open_cifar(ctx.get(), ps.data(), static_cast<int>(ps.size()), cifar100 ? 1 : 0, &d));
        return Dataset(d);
    }
    const simclr_dataset *get() const noexcept { return p_.get(); }
    int64_t count() const noexcept { return simclr_dataset_count(p_.get()); }
    /* {height, width, channels} */
    std::vector<int64_t> shape() const
    {
        int64_t h = 0, w = 0, c = 0;
        check(simclr_dataset_shape(p_.get(), &h, &w, &c));
        return {h, w, c};
    }
    /* Labels (count() entries, owned by the data set) or nullptr. */
    const int32_t *labels() const noexcept { return simclr_dataset_labels(p_.get()); }
    int class_count() const noexcept { return simclr_dataset_class_count(p_.get()); }
    void batch(const std::vector<int64_t> &indices, const TensorView &out) const
    {
        check(simclr_dataset_batch(p_.get(), indices.data(), static_cast<int64_t>(indices.size()), out.get()));
    }

private:
    explicit Dataset(simclr_dataset *d) noexcept : p_(d) {}
    detail::Owner<simclr_dataset, simclr_dataset_destroy> p_;
};

/* Label fractions: the class-balanced subset's indices, ascending
 * (simclr_label_subset_fraction / _per_class). */
inline std::vector<int64_t> label_subset_fraction(const Context &ctx, const std::vector<int32_t> &labels,
                                                  int n_classes, double fraction, uint64_t seed)
{
    int64_t n = 0;
    check(simclr_label_subset_fraction(ctx.get(), labels.data(), static_cast<int64_t>(labels.size()), n_classes,
                                       fraction, seed, nullptr, 0, &n));
    std::vector<int64_t> out(static_cast<std::size_t>(n));
    check(simclr_label_subset_fraction(ctx.get(), labels.data(), static_cast<int64_t>(labels.size()), n_classes,
                                       fraction, seed, out.data(), n, &n));
    return out;
}

inline std::vector<int64_t> label_subset_per_class(const Context &ctx, const std::vector<int32_t> &labels,
                                                   int n_classes, int64_t per_class, uint64_t seed)
{
    int64_t n = 0;
    check(simclr_label_subset_per_class(ctx.get(), labels.data(), static_cast<int64_t>(labels.size()), n_classes,
                                        per_class, seed, nullptr, 0, &n));
    std::vector<int64_t> out(static_cast<std::size_t>(n));
    check(simclr_label_subset_per_class(ctx.get(), labels.data(), static_cast<int64_t>(labels.size()), n_classes,
                                        per_class, seed, out.data(), n, &n));
    return out;
}

inline void label_subset_save(const Context &ctx, const std::string &path, const std::vector<int64_t> &indices,
                              int64_t n_labels, double fraction, int64_t per_class, uint64_t seed)
{
    check(simclr_label_subset_save(ctx.get(), path.c_str(), indices.data(), static_cast<int64_t>(indices.size()),
                                   n_labels, fraction, per_class, seed));
}

/* The indices of a subset file; n_labels 0 accepts any total. */
inline std::vector<int64_t> label_subset_load(const Context &ctx, const std::string &path, int64_t n_labels = 0,
                                              uint64_t *seed = nullptr, double *fraction = nullptr,
                                              int64_t *per_class = nullptr)
{
    int64_t n = 0;
    check(simclr_label_subset_load(ctx.get(), path.c_str(), n_labels, nullptr, 0, &n, nullptr, nullptr, nullptr));
    std::vector<int64_t> out(static_cast<std::size_t>(n));
    check(simclr_label_subset_load(ctx.get(), path.c_str(), n_labels, out.data(), n, &n, seed, fraction, per_class));
    return out;
}

/* ---------------------------------------------------------- evaluation -- */

inline void extract_features(Module &encoder, const Dataset &ds, Augment *aug, int64_t batch_size,
                             const TensorView &out)
{
    check(simclr_extract_features(encoder.get(), ds.get(), aug ? aug->get() : nullptr, batch_size, out.get()));
}

/* kNN and linear probe through the length-checked C functions. The vector
 * overloads pass the labels' real lengths (a mismatch throws SIMCLR_E_SHAPE);
 * the pointer overloads trust the arrays to hold the rows of train and test. */
inline double knn_eval(const Context &ctx, const TensorView &train, const std::vector<int32_t> &train_labels,
                       const TensorView &test, const std::vector<int32_t> &test_labels, int n_classes,
                       int k = 200, double temperature = 0.1)
{
    double top1 = 0;
    check(simclr_knn_eval_n(ctx.get(), train.get(), train_labels.data(), static_cast<int64_t>(train_labels.size()),
                            test.get(), test_labels.data(), static_cast<int64_t>(test_labels.size()), n_classes, k,
                            temperature, &top1));
    return top1;
}

inline double knn_eval(const Context &ctx, const TensorView &train, const int32_t *train_labels,
                       const TensorView &test, const int32_t *test_labels, int n_classes, int k = 200,
                       double temperature = 0.1)
{
    double top1 = 0;
    check(simclr_knn_eval_n(ctx.get(), train.get(), train_labels, train.dim(0), test.get(), test_labels, test.dim(0),
                            n_classes, k, temperature, &top1));
    return top1;
}

inline double linear_probe(const Context &ctx, const TensorView &train, const std::vector<int32_t> &train_labels,
                           const TensorView &test, const std::vector<int32_t> &test_labels, int n_classes,
                           int epochs, double weight_decay = 0.0)
{
    double top1 = 0;
    check(simclr_linear_probe_n(ctx.get(), train.get(), train_labels.data(),
                                static_cast<int64_t>(train_labels.size()), test.get(), test_labels.data(),
                                static_cast<int64_t>(test_labels.size()), n_classes, epochs, weight_decay, &top1));
    return top1;
}

inline double linear_probe(const Context &ctx, const TensorView &train, const int32_t *train_labels,
                           const TensorView &test, const int32_t *test_labels, int n_classes, int epochs,
                           double weight_decay = 0.0)
{
    double top1 = 0;
    check(simclr_linear_probe_n(ctx.get(), train.get(), train_labels, train.dim(0), test.get(), test_labels,
                                test.dim(0), n_classes, epochs, weight_decay, &top1));
    return top1;
}

/* Accuracy, confusion (rows: the true class) and per-class recall of a
 * classifier or of predictions. */
struct Metrics {
    double accuracy = 0;
    std::vector<int64_t> confusion; /* n_classes * n_classes */
    std::vector<double> recall;     /* n_classes; NaN for a class without labels */
};

inline Metrics classification_metrics(const std::vector<int32_t> &predicted, const std::vector<int32_t> &labels,
                                      int n_classes)
{
    if (predicted.size() != labels.size())
        throw Error(SIMCLR_E_SHAPE, "simclr.hpp: classification_metrics: predicted and labels differ in length");
    Metrics m;
    m.confusion.resize(static_cast<std::size_t>(n_classes > 0 ? n_classes : 0) * static_cast<std::size_t>(n_classes > 0 ? n_classes : 0));
    m.recall.resize(static_cast<std::size_t>(n_classes > 0 ? n_classes : 0));
    check(simclr_classification_metrics(predicted.data(), labels.data(), static_cast<int64_t>(labels.size()), n_classes,
                                        &m.accuracy, m.confusion.data(), static_cast<int64_t>(m.confusion.size()),
                                        m.recall.data(), static_cast<int64_t>(m.recall.size())));
    return m;
}

/* ---------------------------------------------------------- classifier -- */

/* Class probabilities of host images (evaluation transform, encoder, linear
 * head, softmax). Borrows both modules read-only; one per thread, each on
 * its own Context. */
class Classifier {
public:
    Classifier(const Context &ctx, const Module &encoder, const Module &head, int64_t out_h, int64_t out_w)
    {
        simclr_classifier *c = nullptr;
        check(simclr_classifier_create(ctx.get(), encoder.get(), head.get(), out_h, out_w, &c));
        p_.reset(c);
    }
    simclr_classifier *get() const noexcept { return p_.get(); }
    Classifier &set(simclr_classifier_param key, double value)
    {
        check(simclr_classifier_set(p_.get(), key, value));
        return *this;
    }
    double get(simclr_classifier_param key) const
    {
        double v = 0;
        check(simclr_classifier_get(p_.get(), key, &v));
        return v;
    }
    int classes() const { return static_cast<int>(get(SIMCLR_CLASSIFIER_CLASSES)); }
    /* probs: F32 [count, classes]. */
    void run(const ImageList &images, const TensorView &probs)
    {
        check(simclr_classifier_run(p_.get(), images.get(), probs.get()));
    }
    /* classes[i*k + j] / probs[i*k + j]: image i's j-th class and its probability. */
    void topk(const ImageList &images, int k, std::vector<int32_t> &classes_out, std::vector<float> &probs_out)
    {
        const std::size_t n = static_cast<std::size_t>(images.count()) * static_cast<std::size_t>(k > 0 ? k : 0);
        std::vector<int32_t> c(n);
        std::vector<float> p(n);
        check(simclr_classifier_topk(p_.get(), images.get(), k, c.data(), p.data(), static_cast<int64_t>(n)));
        classes_out.swap(c);
        probs_out.swap(p);
    }
    Metrics evaluate(const ImageList &images, const std::vector<int32_t> &labels)
    {
        const std::size_t k = static_cast<std::size_t>(classes());
        Metrics m;
        m.confusion.resize(k * k);
        m.recall.resize(k);
        check(simclr_classifier_evaluate(p_.get(), images.get(), labels.data(), static_cast<int64_t>(labels.size()),
                                         &m.accuracy, m.confusion.data(), static_cast<int64_t>(k * k),
                                         m.recall.data(), static_cast<int64_t>(k)));
        return m;
    }

private:
    detail::Owner<simclr_classifier, simclr_classifier_destroy> p_;
};

} // namespace simclr

#endif /* SIMCLR_HPP */
