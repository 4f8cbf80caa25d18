"""A float64 NumPy re-implementation of dense networks, Keras's losses and optimizers: the
reference the engine is tested against."""

import numpy as np

EPS = 1e-7


def act_forward(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise KeyError(name)


def act_backward(name, z, h, dh):
    if name == "linear":
        return dh
    if name == "relu":
        return dh * (z > 0)
    if name == "sigmoid":
        return dh * h * (1.0 - h)
    if name == "tanh":
        return dh * (1.0 - h * h)
    if name == "softmax":
        return h * (dh - (dh * h).sum(axis=1, keepdims=True))
    raise KeyError(name)


def loss_and_grad(loss, p, y):
    """Mean loss over the batch and its gradient with respect to p (Keras's formulas)."""
    b = p.shape[0]
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        if loss == "sparse_categorical_crossentropy":
            y = np.eye(p.shape[1])[y.reshape(-1).astype(int)]
        s = p.sum(axis=1, keepdims=True)
        q = p / s
        qc = np.clip(q, EPS, 1 - EPS)
        per = -(y * np.log(qc)).sum(axis=1)
        inside = (q >= EPS) & (q <= 1 - EPS)
        dq = np.where(inside, -y / q, 0.0)
        dp = (dq - (dq * q).sum(axis=1, keepdims=True)) / s
        return per.mean(), dp / b
    if loss == "binary_crossentropy":
        pc = np.clip(p, EPS, 1 - EPS)
        per = -(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean(axis=1)
        dp = (p - y) / (p * (1 - p)) / p.shape[1]
        return per.mean(), dp / b
    if loss == "mean_squared_error":
        return ((p - y) ** 2).mean(axis=1).mean(), 2 * (p - y) / p.shape[1] / b
    if loss == "mean_absolute_error":
        return np.abs(p - y).mean(axis=1).mean(), np.sign(p - y) / p.shape[1] / b
    per, dp = other_loss(loss, p, y)
    return per.mean(), dp / b


def other_loss(loss, p, y, delta=1.0):
    """Keras's other losses: per-sample values and their gradients in p (rows × cols)."""
    n = p.shape[1]
    if loss == "mean_absolute_percentage_error":
        m = np.maximum(np.abs(y), EPS)
        return 100 * (np.abs(y - p) / m).mean(axis=1), 100 * np.sign(p - y) / m / n
    if loss == "mean_squared_logarithmic_error":
        a = np.maximum(p, EPS) + 1
        e = np.log(a) - np.log(np.maximum(y, EPS) + 1)
        return (e * e).mean(axis=1), 2 * e / a * (p > EPS) / n
    if loss == "cosine_similarity":
        inv_p = np.minimum(1 / np.sqrt((p * p).sum(axis=1, keepdims=True)), 1 / EPS)
        inv_y = np.minimum(1 / np.sqrt((y * y).sum(axis=1, keepdims=True)), 1 / EPS)
        yp = (y * p).sum(axis=1, keepdims=True)
        return -(yp * inv_y * inv_p)[:, 0], -inv_y * (y - yp * inv_p**2 * p) * inv_p
    if loss == "huber":
        e = p - y
        small = np.abs(e) <= delta
        per = np.where(small, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta)
        return per.mean(axis=1), np.where(small, e, delta * np.sign(e)) / n
    if loss == "log_cosh":
        e = p - y
        return np.log(np.cosh(e)).mean(axis=1), np.tanh(e) / n
    if loss in ("hinge", "squared_hinge"):
        t = 2 * y - 1 if np.all((y == 0) | (y == 1)) else y
        m = np.maximum(1 - t * p, 0)
        if loss == "hinge":
            return m.mean(axis=1), -t * (m > 0) / n
        return (m * m).mean(axis=1), -2 * t * m / n
    if loss == "categorical_hinge":
        q = (1 - y) * p
        neg = q.max(axis=1, keepdims=True)
        per = np.maximum(neg - (y * p).sum(axis=1, keepdims=True) + 1, 0)
        ties = q == neg
        dneg = (1 - y) * ties / ties.sum(axis=1, keepdims=True)
        return per[:, 0], (dneg - y) * (per > 0)
    if loss == "kl_divergence":
        yc, pc = np.clip(y, EPS, 1), np.clip(p, EPS, 1)
        return (yc * np.log(yc / pc)).sum(axis=1), -yc / pc * ((p >= EPS) & (p <= 1))
    if loss == "poisson":
        return (p - y * np.log(p + EPS)).mean(axis=1), (1 - y / (p + EPS)) / n
    raise KeyError(loss)


def mlp_step(weights, activations, x, y, loss):
    """weights: [W0, b0, W1, b1, ...]; returns (output, loss, grads) in float64."""
    h = x.astype(np.float64)
    cache = []
    for i, act in enumerate(activations):
        w, b = weights[2 * i].astype(np.float64), weights[2 * i + 1].astype(np.float64)
        z = h @ w + b
        out = act_forward(act, z)
        cache.append((h, z, out))
        h = out
    value, dh = loss_and_grad(loss, h, y.astype(np.float64))
    grads = [None] * len(weights)
    for i in reversed(range(len(activations))):
        h_in, z, out = cache[i]
        dz = act_backward(activations[i], z, out, dh)
        grads[2 * i] = h_in.T @ dz
        grads[2 * i + 1] = dz.sum(axis=0)
        dh = dz @ weights[2 * i].astype(np.float64).T
    return h, value, grads


def rmsprop(w, g, state, lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    v = state.setdefault("v", np.zeros_like(w))
    v[...] = rho * v + (1 - rho) * g * g
    denom = v
    if centered:
        a = state.setdefault("a", np.zeros_like(w))
        a[...] = rho * a + (1 - rho) * g
        denom = v - a * a
    inc = lr * g / np.sqrt(denom + epsilon)
    if momentum > 0:
        m = state.setdefault("m", np.zeros_like(w))
        m[...] = momentum * m + inc
        return w - m
    return w - inc


def sgd(w, g, state, lr=0.01, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g
    m = state.setdefault("m", np.zeros_like(w))
    m[...] = momentum * m - lr * g
    return w + momentum * m - lr * g if nesterov else w + m


def adam(w, g, state, step, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
         weight_decay=0.0):
    w = w - lr * weight_decay * w
    m = state.setdefault("m", np.zeros_like(w))
    v = state.setdefault("v", np.zeros_like(w))
    m[...] = m + (g - m) * (1 - beta_1)
    v[...] = v + (g * g - v) * (1 - beta_2)
    alpha = lr * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    vv = v
    if amsgrad:
        vh = state.setdefault("vhat", np.zeros_like(w))
        vh[...] = np.maximum(vh, v)
        vv = vh
    return w - alpha * m / (np.sqrt(vv) + epsilon)


def lamb(w, g, state, step, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
         weight_decay=0.0):
    """Keras's Lamb on one variable: Adam's moments, the step m̂/(sqrt(v̂) + epsilon) scaled by
    the trust ratio ‖w‖/‖step‖ (1 when either norm is 0)."""
    w = w - lr * weight_decay * w
    m = state.setdefault("m", np.zeros_like(w))
    v = state.setdefault("v", np.zeros_like(w))
    m[...] = m + (g - m) * (1 - beta_1)
    v[...] = v + (g * g - v) * (1 - beta_2)
    update = (m / (1 - beta_1**step)) / (np.sqrt(v / (1 - beta_2**step)) + epsilon)
    w_norm, u_norm = np.sqrt(np.sum(w * w)), np.sqrt(np.sum(update * update))
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    return w - ratio * lr * update


def adamax(w, g, state, step, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
           weight_decay=0.0):
    w = w - lr * weight_decay * w
    m = state.setdefault("m", np.zeros_like(w))
    u = state.setdefault("u", np.zeros_like(w))
    m[...] = m + (g - m) * (1 - beta_1)
    u[...] = np.maximum(beta_2 * u, np.abs(g))
    return w - lr * m / ((1 - beta_1**step) * (u + epsilon))


def adagrad(w, g, state, lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = state.setdefault("acc", np.full_like(w, initial_accumulator_value))
    acc[...] = acc + g * g
    return w - lr * g / np.sqrt(acc + epsilon)


def lion(w, g, state, lr=0.001, beta_1=0.9, beta_2=0.99, weight_decay=0.0):
    w = w - lr * weight_decay * w
    m = state.setdefault("m", np.zeros_like(w))
    w = w - lr * np.sign(m * beta_1 + g * (1 - beta_1))
    m[...] = m * beta_2 + g * (1 - beta_2)
    return w


def nadam(w, g, state, step, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
          weight_decay=0.0):
    """Keras's Nadam, its running product of u_t = beta_1·(1 - 0.5·0.96^t) from scratch."""
    def u(t):
        return beta_1 * (1 - 0.5 * 0.96**t)

    product = np.prod([u(t) for t in range(1, step + 1)])
    w = w - lr * weight_decay * w
    m = state.setdefault("m", np.zeros_like(w))
    v = state.setdefault("v", np.zeros_like(w))
    m[...] = m + (g - m) * (1 - beta_1)
    v[...] = v + (g * g - v) * (1 - beta_2)
    m_hat = u(step + 1) * m / (1 - product * u(step + 1)) + (1 - u(step)) * g / (1 - product)
    v_hat = v / (1 - beta_2**step)
    return w - lr * m_hat / (np.sqrt(v_hat) + epsilon)


def ftrl(w, g, state, lr=0.001, power=-0.5, initial=0.1, l1=0.0, l2=0.0, shrinkage=0.0,
         beta=0.0):
    """Keras's Ftrl."""
    acc = state.setdefault("acc", np.full_like(w, initial))
    linear = state.setdefault("linear", np.zeros_like(w))
    l2 = l2 + beta / (2.0 * lr)
    new_acc = acc + g * g
    linear[...] = linear + (g + 2 * shrinkage * w) - (new_acc ** -power - acc ** -power) / lr * w
    quadratic = new_acc ** -power / lr + 2 * l2
    acc[...] = new_acc
    return (np.clip(linear, -l1, l1) - linear) / quadratic


def adadelta(w, g, state, lr=0.001, rho=0.95, epsilon=1e-7):
    acc_g = state.setdefault("acc_g", np.zeros_like(w))
    acc_d = state.setdefault("acc_d", np.zeros_like(w))
    acc_g[...] = rho * acc_g + (1 - rho) * g * g
    d = -np.sqrt(acc_d + epsilon) * g / np.sqrt(acc_g + epsilon)
    acc_d[...] = rho * acc_d + (1 - rho) * d * d
    return w + lr * d


def rel_err(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.abs(expected).max(), 1e-12)
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max() / scale)
