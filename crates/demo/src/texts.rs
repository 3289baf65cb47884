//! What the demo company sells and what its people write: the offers a lead asks about (with
//! sales direction, need type and a realistic budget range in roubles), and the comments a
//! manager or a supervisor leaves at each step of the process, in Russian as the CRM's users
//! would type them.
//!
//! Plain data and small pickers only; which step uses which text is the script's business.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Something a customer asks for.
pub struct Offer {
    /// Title phrasings; `{n}` is replaced by a quantity from `qty`.
    pub titles: &'static [&'static str],
    pub qty: (u32, u32),
    /// Round quantities to this, as people do (and «460 голов» agrees where «461 голов» would not).
    pub qty_step: u32,
    pub sales_direction: &'static str,
    pub need_type: &'static str,
    /// Budget range in whole roubles.
    pub budget: (i64, i64),
}

pub const OFFERS: &[Offer] = &[
    Offer {
        titles: &[
            "Доильный зал на {n} голов",
            "Поставка доильного оборудования",
            "Модернизация доильной установки",
        ],
        qty: (60, 600),
        qty_step: 10,
        sales_direction: "Оборудование",
        need_type: "Модернизация производства",
        budget: (1_500_000, 12_000_000),
    },
    Offer {
        titles: &[
            "Холодильные камеры, {n} шт.",
            "Холодильное оборудование для склада",
        ],
        qty: (2, 12),
        qty_step: 1,
        sales_direction: "Оборудование",
        need_type: "Хранение продукции",
        budget: (400_000, 4_500_000),
    },
    Offer {
        titles: &["Насосная станция", "Замена насосов, {n} шт."],
        qty: (2, 20),
        qty_step: 1,
        sales_direction: "Оборудование",
        need_type: "Замена оборудования",
        budget: (300_000, 3_000_000),
    },
    Offer {
        titles: &[
            "Сервисный договор на {n} мес.",
            "Техническое обслуживание оборудования",
        ],
        qty: (6, 36),
        qty_step: 1,
        sales_direction: "Сервис",
        need_type: "Обслуживание",
        budget: (120_000, 1_200_000),
    },
    Offer {
        titles: &["Запчасти и расходные материалы", "Ремкомплекты, {n} шт."],
        qty: (5, 200),
        qty_step: 1,
        sales_direction: "Запчасти",
        need_type: "Ремонт",
        budget: (20_000, 500_000),
    },
    Offer {
        titles: &["Монтаж и пусконаладка", "Монтаж вентиляции на {n} м²"],
        qty: (200, 5000),
        qty_step: 10,
        sales_direction: "Монтаж",
        need_type: "Ввод в эксплуатацию",
        budget: (150_000, 2_500_000),
    },
    Offer {
        titles: &[
            "Дизель-генератор {n} кВт",
            "Резервное электропитание объекта",
        ],
        qty: (30, 800),
        qty_step: 10,
        sales_direction: "Энергетика",
        need_type: "Резервное питание",
        budget: (350_000, 6_000_000),
    },
    Offer {
        titles: &[
            "Обучение персонала, {n} чел.",
            "Курс по эксплуатации оборудования",
        ],
        qty: (3, 40),
        qty_step: 1,
        sales_direction: "Обучение",
        need_type: "Повышение квалификации",
        budget: (50_000, 400_000),
    },
];

/// A title phrasing of `offer`, with its quantity filled in.
pub fn offer_title(rng: &mut ChaCha8Rng, offer: &Offer) -> String {
    let template = offer.titles.choose(rng).expect("not empty");
    let n = rng.random_range(offer.qty.0..=offer.qty.1) / offer.qty_step * offer.qty_step;
    template.replace("{n}", &n.to_string())
}

/// A budget within `offer`'s range, in kopecks, rounded to thousands of roubles as people
/// quote them.
pub fn budget_minor(rng: &mut ChaCha8Rng, offer: &Offer) -> i64 {
    let roubles = rng.random_range(offer.budget.0..=offer.budget.1);
    roubles / 1000 * 1000 * 100
}

/// Pick one line of a list.
pub fn pick(rng: &mut ChaCha8Rng, lines: &[&'static str]) -> &'static str {
    lines.choose(rng).expect("text lists are not empty")
}

/// What the customer wrote or said when the inquiry came in.
pub const INQUIRY_COMMENTS: &[&str] = &[
    "Прошу выслать коммерческое предложение",
    "Интересует цена и сроки поставки",
    "Нужна консультация инженера",
    "Перезвоните, пожалуйста, после 14:00",
    "Сравниваем предложения нескольких поставщиков",
    "Нужен счёт до конца месяца",
    "Интересует лизинг или рассрочка",
    "Просим рассчитать с доставкой и монтажом",
];

pub const PARTNERS: &[&str] = &[
    "ТД «Агротехника»",
    "ООО «ПромПартнёр»",
    "Дилер «Сибирь-Техно»",
    "ООО «Юг-Оборудование»",
    "Дилер «Северо-Запад»",
];

pub const WEB_PAGES: &[&str] = &[
    "/catalog/doilnoe-oborudovanie",
    "/catalog/kholodilnye-kamery",
    "/catalog/nasosy",
    "/service",
    "/catalog/generatory",
    "/price-2026",
];

/// Why a lead is junk, per catalog reason code.
pub fn disqualify_comment(reason: &str) -> &'static [&'static str] {
    match reason {
        "no-budget" => &[
            "Бюджет на этот год не выделен",
            "Денег нет, просили не звонить до осени",
        ],
        "no-need" => &[
            "Потребности нет, просто собирали цены",
            "Ошиблись, оборудование уже есть",
        ],
        "competitor" => &[
            "Купили у конкурента, дешевле на 12%",
            "Выбрали поставщика с отсрочкой платежа",
        ],
        "unreachable" => &[
            "Три звонка без ответа, письмо без ответа",
            "Номер не отвечает неделю",
        ],
        "wrong-contact" => &[
            "Номер принадлежит другому человеку",
            "Почта не существует, телефон неверный",
        ],
        "duplicate" => &[
            "Дубль: клиент уже в работе у коллеги",
            "Повторная заявка с того же номера",
        ],
        "spam" => &["Реклама услуг, не клиент", "Робот-обзвон"],
        "not-decision-maker" => &[
            "Звонил стажёр, решения не принимает",
            "Решает головной офис, контакта нет",
        ],
        "out-of-region" => &[
            "Объект в Казахстане, не работаем",
            "Регион вне зоны сервиса",
        ],
        "product-mismatch" => &[
            "Нужно б/у оборудование, мы не продаём",
            "Нужна другая мощность, такой нет в линейке",
        ],
        "price" => &[
            "Цена выше бюджета в полтора раза",
            "Не устроила стоимость монтажа",
        ],
        "timing" => &[
            "Проект отложен на неопределённый срок",
            "Стройка заморожена",
        ],
        _ => &["Не целевой лид"],
    }
}

pub const NURTURING: &[&str] = &[
    "Вернуться после утверждения бюджета",
    "Отправить рассылку с новым прайсом и перезвонить",
    "Пригласить на выставку в следующем месяце",
    "Клиент строит новый корпус, проверить сроки стройки",
];

pub const NEED_ABSENT: &[&str] = &[
    "Клиент подтвердил, что потребности нет",
    "Задача решена своими силами",
    "Проект закрыт заказчиком",
];

pub const POSTPONED: &[&str] = &[
    "Клиент в командировке, перезвонить позже",
    "Ждут решения собственника",
    "Попросили набрать после совещания",
];

pub const NO_INTEREST: &[&str] = &[
    "Сейчас не до этого, просили вернуться позже",
    "Интерес пропал, попробовать через пару недель",
];

pub const RETURN_TO_DISTRIBUTION: &[&str] = &[
    "Клиент из другого региона, передать профильному менеджеру",
    "Нужен менеджер по сервису, не по оборудованию",
    "Не успеваю, прошу перераспределить",
];

pub const TRANSFER_TO_SALE: &[&str] = &[
    "Бюджет подтверждён, договорились о встрече",
    "ЛПР на связи, ждёт КП и встречу на объекте",
    "Потребность подтверждена, готовы к переговорам",
];

pub const PLACE_ORDER: &[&str] = &[
    "Клиент готов оплатить по счёту",
    "Заказ по прайсу, без переговоров",
];

pub const HANDOFF_DETAILS: &[&str] = &[
    "Встреча на объекте, нужен выезд инженера",
    "Решение принимает директор, согласование неделя",
    "Конкурентная закупка, важна цена",
];

pub const JUMP_FORWARD: &[&str] = &[
    "Клиент сразу готов обсуждать условия",
    "Постоянный клиент, квалификация не нужна",
    "Срочная заявка от директора",
];

pub const JUMP_TO_SALE: &[&str] = &[
    "Договорились на выставке, сразу в продажу",
    "Повторный заказ постоянного клиента",
];

pub const JUMP_BACK: &[&str] = &[
    "Неполные данные, вернуть на квалификацию",
    "Контакт сменился, уточнить потребность заново",
];

pub const REOPEN: &[&str] = &[
    "Клиент вернулся с новым запросом",
    "Дисквалифицирован по ошибке",
    "Клиент перезвонил сам, потребность появилась",
];

pub const DEAL_LOST: &[&str] = &[
    "Не согласовали условия оплаты",
    "Проект перенесли на следующий квартал",
    "Тендер выиграл другой поставщик",
];

pub const CALLBACK_NOTES: &[&str] = &[
    "Перезвонили, клиент уточнил задачу",
    "Дозвонились со второй попытки",
];

pub const MEETING_MOVED: &[&str] = &[
    "Встречу перенесли по просьбе клиента",
    "Согласовали новую дату решения",
];
