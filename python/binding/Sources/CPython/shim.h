// CPython for Swift: the stable ABI of 3.11 (one `_aidge.abi3.so` for every later CPython), and small inline
// helpers for what Swift cannot see (macros, variadic functions), plus the DLPack structs.
#ifndef AIDGE_CPYTHON_SHIM_H
#define AIDGE_CPYTHON_SHIM_H

#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <stdint.h>

/// Every object of the extension's types: the Python header and one retained Swift object.
typedef struct {
    PyObject_HEAD
    void *swift;
} AidgeObject;

static inline PyObject *aidge_none(void) { return Py_NewRef(Py_None); }
static inline PyObject *aidge_true(void) { return Py_NewRef(Py_True); }
static inline PyObject *aidge_false(void) { return Py_NewRef(Py_False); }
static inline PyObject *aidge_not_implemented(void) { return Py_NewRef(Py_NotImplemented); }
static inline int aidge_is_none(PyObject *o) { return o == Py_None; }
static inline PyObject *aidge_none_borrowed(void) { return Py_None; }

static inline int PyLong_Check_(PyObject *o) { return PyLong_Check(o); }
static inline int PyUnicode_Check_(PyObject *o) { return PyUnicode_Check(o); }
static inline int PyBytes_Check_(PyObject *o) { return PyBytes_Check(o); }
static inline int PyTuple_Check_(PyObject *o) { return PyTuple_Check(o); }
static inline int PyList_Check_(PyObject *o) { return PyList_Check(o); }
static inline int PyDict_Check_(PyObject *o) { return PyDict_Check(o); }
static inline int PyFloat_Check_(PyObject *o) { return PyFloat_Check(o); }
static inline int PyBool_Check_(PyObject *o) { return PyBool_Check(o); }
static inline int PyType_Check_(PyObject *o) { return PyType_Check(o); }
static inline int PyCapsule_CheckExact_(PyObject *o) { return PyCapsule_CheckExact(o); }

static inline PyObject *aidge_exc_value_error(void) { return PyExc_ValueError; }
static inline PyObject *aidge_exc_type_error(void) { return PyExc_TypeError; }
static inline PyObject *aidge_exc_runtime_error(void) { return PyExc_RuntimeError; }
static inline PyObject *aidge_exc_not_implemented_error(void) { return PyExc_NotImplementedError; }
static inline PyObject *aidge_exc_buffer_error(void) { return PyExc_BufferError; }
static inline PyObject *aidge_exc_index_error(void) { return PyExc_IndexError; }
static inline PyObject *aidge_exc_os_error(void) { return PyExc_OSError; }
static inline PyObject *aidge_exc_exception(void) { return PyExc_Exception; }

static inline PyModuleDef_Base aidge_moduledef_head(void) {
    PyModuleDef_Base head = PyModuleDef_HEAD_INIT;
    return head;
}

static inline PyObject *aidge_module_create(PyModuleDef *def) { return PyModule_Create2(def, PYTHON_ABI_VERSION); }

// Flags and buffer-protocol constants as plain values.
static inline unsigned long aidge_tpflags_default_base(void) { return Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE; }
static inline unsigned long aidge_tpflags_default(void) { return Py_TPFLAGS_DEFAULT; }
static inline int aidge_meth_varargs_keywords(void) { return METH_VARARGS | METH_KEYWORDS; }
static inline int aidge_meth_varargs(void) { return METH_VARARGS; }
static inline int aidge_meth_noargs(void) { return METH_NOARGS; }
static inline int aidge_meth_o(void) { return METH_O; }
static inline int aidge_meth_static(void) { return METH_STATIC; }

// DLPack 1.x (dlpack.h), as the protocol defines it.
typedef struct { uint32_t major; uint32_t minor; } DLPackVersion;
typedef struct { int32_t device_type; int32_t device_id; } DLDevice;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;

#endif
