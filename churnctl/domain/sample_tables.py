"""Customer-table exports shaped like the public churn data sets people try a tool on.

No data is downloaded: each table comes from a small latent model with the columns, value
spellings, messiness and difficulty of its public counterpart, deterministic by seed. They back
`churnctl data table` (so the own-data examples run as written) and the table tests.

- `telecom_like`: one row per subscriber with a `customerID`, Yes/No service columns, a
  `TotalCharges` column stored as text with a blank (" ") for new customers, `Churn` Yes/No.
  Churn is close to additive in the columns, so a linear model does as well as trees (mid-0.8s).
- `bank_like`: `RowNumber`, `CustomerId`, `Surname`, credit score, geography, age, balance,
  products, `Exited` 1/0. Churn depends on age and product count non-monotonically, so trees
  beat a linear model (high-0.8s against high-0.7s).
- `numeric_telecom_like`: an all-numeric telecom export (minutes, calls and charges per period,
  0/1 plans, customer service calls, `Churn` 0/1). Threshold effects and interactions, so
  trees beat a linear model by one to three points of ROC AUC (about 0.86 against 0.84).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrate(logit: np.ndarray, rate: float) -> np.ndarray:
    """Shift the logit so the mean churn probability is `rate` (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _sigmoid(logit + mid).mean() < rate else (low, mid)
    return _sigmoid(logit + (low + high) / 2)


def _choice(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    return rng.choice(np.array(values, dtype=object), size=n, p=p)


def telecom_like(rows: int = 7043, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rows
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    ids = pd.Series([f"{rng.integers(1000, 9999)}-{''.join(rng.choice(letters, 5))}"
                     for _ in range(n)])
    ids = ids.where(~ids.duplicated(), ids + "X" + ids.index.astype(str))  # unique, as in exports
    senior = (rng.random(n) < 0.16).astype(int)
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.5, 0.12)
    group = rng.random(n)
    tenure = np.where(group < 0.3, rng.integers(0, 13, n),
                      np.where(group < 0.75, rng.integers(1, 72, n), rng.integers(60, 73, n)))
    phone = rng.random(n) < 0.9
    internet = _choice(rng, ["DSL", "Fiber optic", "No"], [0.34, 0.44, 0.22], n)
    has_net = internet != "No"
    m2m_p = _sigmoid(1.6 - 0.055 * tenure)
    u = rng.random(n)
    contract = np.where(u < m2m_p, "Month-to-month",
                        np.where(rng.random(n) < 0.47, "One year", "Two year")).astype(object)
    paperless = rng.random(n) < 0.59
    payment = _choice(rng, ["Electronic check", "Mailed check", "Bank transfer (automatic)",
                            "Credit card (automatic)"], [0.34, 0.23, 0.22, 0.21], n)
    addons = {}
    for name, share in (("OnlineSecurity", 0.37), ("OnlineBackup", 0.44),
                        ("DeviceProtection", 0.44), ("TechSupport", 0.37),
                        ("StreamingTV", 0.5), ("StreamingMovies", 0.5)):
        addons[name] = has_net & (rng.random(n) < share)
    multiple = phone & (rng.random(n) < 0.47)
    monthly = (20.0 * phone + np.select([internet == "DSL", internet == "Fiber optic"], [25, 50], 0)
               + 5 * multiple + sum(5.0 * addons[k] for k in ("OnlineSecurity", "OnlineBackup",
                                                             "DeviceProtection", "TechSupport"))
               + 10.0 * (addons["StreamingTV"] + addons["StreamingMovies"])
               + rng.normal(0, 2.0, n))
    monthly = np.round(np.clip(monthly, 18.25, 120), 2)
    total = np.round(monthly * tenure * rng.normal(1.0, 0.04, n), 2)
    logit = (np.select([contract == "Month-to-month", contract == "One year"], [1.0, -0.35], -1.5)
             - 0.032 * tenure + 0.85 * (internet == "Fiber optic") - 0.5 * (internet == "No")
             + 0.45 * (payment == "Electronic check") + 0.35 * paperless + 0.3 * senior
             - 0.4 * addons["TechSupport"] - 0.4 * addons["OnlineSecurity"]
             + 0.15 * (addons["StreamingTV"] | addons["StreamingMovies"])
             - 0.15 * partner - 0.2 * dependents + 0.006 * (monthly - 65)
             + rng.normal(0, 0.35, n))
    churn = rng.random(n) < _calibrate(logit, 0.265)

    def yes_no(mask: np.ndarray, off: np.ndarray | None = None, off_label: str = "") -> np.ndarray:
        out = np.where(mask, "Yes", "No").astype(object)
        if off is not None:
            out[off] = off_label
        return out

    frame = pd.DataFrame({
        "customerID": ids,
        "gender": _choice(rng, ["Female", "Male"], [0.5, 0.5], n),
        "SeniorCitizen": senior,
        "Partner": yes_no(partner), "Dependents": yes_no(dependents),
        "tenure": tenure, "PhoneService": yes_no(phone),
        "MultipleLines": yes_no(multiple, ~phone, "No phone service"),
        "InternetService": internet,
    })
    for name, mask in addons.items():
        frame[name] = yes_no(mask, ~has_net, "No internet service")
    frame["Contract"] = contract
    frame["PaperlessBilling"] = yes_no(paperless)
    frame["PaymentMethod"] = payment
    frame["MonthlyCharges"] = monthly
    # As in the public export: text, with a single space for customers in their first month.
    frame["TotalCharges"] = np.where(tenure == 0, " ", [f"{v:.2f}" for v in total])
    frame["Churn"] = yes_no(churn)
    return frame


_SYLLABLES = ["ab", "al", "an", "ar", "ba", "be", "bo", "ca", "ch", "da", "de", "el", "er", "fa",
              "ga", "go", "ha", "he", "in", "jo", "ka", "ke", "la", "le", "li", "lo", "ma", "me",
              "mi", "mo", "na", "ne", "ni", "no", "ok", "on", "pa", "pe", "ra", "re", "ri", "ro",
              "sa", "se", "sh", "so", "ta", "te", "ti", "to", "ur", "va", "ve", "wi", "ya", "zo"]


def _surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    """Surnames drawn Zipf-like from a pool: about 3 in 10 rows have a distinct one."""
    pool_size = max(int(n * 0.33), 10)
    pool = np.array(["".join(rng.choice(_SYLLABLES, rng.integers(2, 4))).capitalize()
                     for _ in range(pool_size)], dtype=object)
    weights = 1.0 / np.arange(1, pool_size + 1) ** 0.6
    return rng.choice(pool, size=n, p=weights / weights.sum())


def bank_like(rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rows
    geography = _choice(rng, ["France", "Germany", "Spain"], [0.5, 0.25, 0.25], n)
    gender = _choice(rng, ["Male", "Female"], [0.55, 0.45], n)
    age = np.clip(np.round(18 + rng.gamma(4.5, 4.7, n)), 18, 92).astype(int)
    credit = np.clip(np.round(rng.normal(650, 97, n)), 350, 850).astype(int)
    tenure = rng.integers(0, 11, n)
    zero_balance = (rng.random(n) < 0.48) & (geography != "Germany")
    balance = np.where(zero_balance, 0.0, np.round(np.clip(rng.normal(119_800, 30_000, n),
                                                             3_000, 250_000), 2))
    products = rng.choice([1, 2, 3, 4], size=n, p=[0.508, 0.459, 0.027, 0.006])
    card = (rng.random(n) < 0.7).astype(int)
    active = (rng.random(n) < 0.515).astype(int)
    salary = np.round(rng.uniform(11.58, 199_992.48, n), 2)
    logit = (4.6 * np.exp(-(((age - 54) / 11.0) ** 2))
             + np.select([products == 2, products == 3, products == 4], [-1.8, 2.6, 5.0], 0.0)
             + 0.8 * (geography == "Germany") + 0.55 * (gender == "Female")
             + (1.0 - active) * (0.7 + 0.03 * np.clip(age - 30, 0, None))
             + 0.3 * (balance > 0) * (products == 1) - 0.0008 * (credit - 650)
             + rng.normal(0, 0.3, n))
    exited = (rng.random(n) < _calibrate(logit, 0.204)).astype(int)
    return pd.DataFrame({
        "RowNumber": np.arange(1, n + 1),
        "CustomerId": 15_565_701 + rng.choice(max(250_000, 2 * n), size=n, replace=False),
        "Surname": _surnames(rng, n),
        "CreditScore": credit, "Geography": geography, "Gender": gender, "Age": age,
        "Tenure": tenure, "Balance": balance, "NumOfProducts": products, "HasCrCard": card,
        "IsActiveMember": active, "EstimatedSalary": salary, "Exited": exited,
    })


def numeric_telecom_like(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    """An all-numeric telecom export, like the public "telecom churn" / cell2cell tables.

    Account length, area code, international and voice-mail plans as 0/1, day/eve/night/intl
    minutes, calls and charges (each charge a fixed rate times the minutes, as in the export),
    customer service calls and `Churn` 0/1 at about 14 %. Churn jumps at four or more service
    calls (most of all for light users) and once the total charge passes a level, and the
    international plan matters with many international minutes: threshold effects and
    interactions, so trees beat a linear model by a few points of ROC AUC.
    """
    rng = np.random.default_rng(seed)
    n = rows
    account = np.clip(np.round(rng.normal(101, 40, n)), 1, 243).astype(int)
    area = rng.choice([408, 415, 510], size=n, p=[0.25, 0.5, 0.25])
    intl_plan = (rng.random(n) < 0.095).astype(int)
    vmail_plan = (rng.random(n) < 0.265).astype(int)
    vmail_messages = np.where(vmail_plan == 1,
                              np.clip(np.round(rng.normal(29, 7.5, n)), 1, 52), 0).astype(int)
    usage: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for period, mean, sd, rate in (("day", 180, 54, 0.17), ("eve", 200, 50, 0.085),
                                   ("night", 200, 50, 0.045), ("intl", 10.2, 2.8, 0.27)):
        minutes = np.round(np.clip(rng.normal(mean, sd, n), 0, None), 1)
        calls = (rng.poisson(4.4, n) if period == "intl" else rng.poisson(100, n)).astype(int)
        usage[period] = (minutes, calls, np.round(minutes * rate, 2))
    service_calls = rng.poisson(1.55, n).astype(int)
    total_charge = sum(charge for _, _, charge in usage.values())
    day_minutes, intl_minutes, intl_calls = usage["day"][0], usage["intl"][0], usage["intl"][1]
    many_calls = service_calls >= 4
    logit = (3.0 * many_calls * np.where(day_minutes < 160, 1.5, 0.8)
             + 0.15 * service_calls
             + 4.0 * _sigmoid((total_charge - 71.0) / 1.2) * (1.0 - 0.35 * vmail_plan)
             + intl_plan * (1.4 + 2.4 * (intl_minutes > 13.0) + 1.6 * (intl_calls < 3))
             - 0.9 * vmail_plan + 0.004 * (account - 100)
             + rng.normal(0, 0.3, n))
    churn = (rng.random(n) < _calibrate(logit, 0.145)).astype(int)
    frame = pd.DataFrame({
        "Account length": account, "Area code": area, "International plan": intl_plan,
        "Voice mail plan": vmail_plan, "Number vmail messages": vmail_messages,
    })
    for period, (minutes, calls, charge) in usage.items():
        frame[f"Total {period} minutes"] = minutes
        frame[f"Total {period} calls"] = calls
        frame[f"Total {period} charge"] = charge
    frame["Customer service calls"] = service_calls
    frame["Churn"] = churn
    return frame


# name -> (generator, target column, id column or None): what `churnctl data table` offers.
SAMPLE_TABLES: dict[str, tuple[Callable[..., pd.DataFrame], str, str | None]] = {
    "telecom": (telecom_like, "Churn", "customerID"),
    "bank": (bank_like, "Exited", "CustomerId"),
    "numeric-telecom": (numeric_telecom_like, "Churn", None),
}
